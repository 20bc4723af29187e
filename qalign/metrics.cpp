#include "qalign/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <sstream>
#include <stdexcept>
#include <string>

namespace qalign::metrics {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

void check_sizes(const std::vector<double>& x, const std::vector<double>& y, const char* what) {
  if (x.size() != y.size())
    throw std::invalid_argument(std::string(what) + ": " + std::to_string(x.size()) + " predictions for " +
                                std::to_string(y.size()) + " ground-truth scores");
}

std::string text(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

bool is_constant(const std::vector<double>& v) {
  return std::all_of(v.begin(), v.end(), [&](double a) { return a == v.front(); });
}

// The power of two that brings v's largest magnitude into [0.5, 1) (0 when every value is 0).
// Scaling by it is exact, so what is computed on the scaled values is, scaled back, bit for bit
// what the same steps give on v, except that sums of squares of scores near ±1e308 (or 1e-308)
// no longer overflow (or underflow).
int scale_exponent(const std::vector<double>& v) {
  double largest = 0;
  for (double a : v) largest = std::max(largest, std::abs(a));
  int e = 0;
  if (largest > 0) std::frexp(largest, &e);
  return e;
}

std::vector<double> scaled(const std::vector<double>& v, int exponent) {
  std::vector<double> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = std::ldexp(v[i], -exponent);
  return out;
}

double mean(const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0) / v.size(); }

double population_std(const std::vector<double>& v) {
  const double m = mean(v);
  double ss = 0;
  for (double a : v) ss += (a - m) * (a - m);
  return std::sqrt(ss / v.size());
}

// 0-based dense ranks (equal values share one rank, no gaps): the y axis of the Fenwick tree.
std::vector<size_t> dense_ranks(const std::vector<double>& v) {
  std::vector<double> sorted = v;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  std::vector<size_t> r(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    r[i] = static_cast<size_t>(std::lower_bound(sorted.begin(), sorted.end(), v[i]) - sorted.begin());
  return r;
}

// Σ t(t−1)/2 over runs of equal values in a sorted sequence: the pairs tied in it.
template <typename Equal>
double tied_pairs(size_t n, Equal equal) {
  double pairs = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    while (j < n && equal(i, j)) ++j;
    const double t = static_cast<double>(j - i);
    pairs += t * (t - 1) / 2;
    i = j;
  }
  return pairs;
}

double sigmoid(double z) { return z >= 0 ? 1 / (1 + std::exp(-z)) : std::exp(z) / (1 + std::exp(z)); }

// Solves the 4x4 system a·d = b by Gaussian elimination with partial pivoting; false if singular.
bool solve4(std::array<std::array<double, 4>, 4> a, std::array<double, 4> b, std::array<double, 4>& d) {
  for (int c = 0; c < 4; ++c) {
    int p = c;
    for (int r = c + 1; r < 4; ++r)
      if (std::abs(a[r][c]) > std::abs(a[p][c])) p = r;
    if (!(std::abs(a[p][c]) > 1e-300)) return false;
    std::swap(a[c], a[p]);
    std::swap(b[c], b[p]);
    for (int r = c + 1; r < 4; ++r) {
      const double f = a[r][c] / a[c][c];
      for (int k = c; k < 4; ++k) a[r][k] -= f * a[c][k];
      b[r] -= f * b[c];
    }
  }
  for (int c = 3; c >= 0; --c) {
    double s = b[c];
    for (int k = c + 1; k < 4; ++k) s -= a[c][k] * d[k];
    d[c] = s / a[c][c];
  }
  return std::all_of(d.begin(), d.end(), [](double v) { return std::isfinite(v); });
}

double sum_squared_residuals(const Logistic4& f, const std::vector<double>& x, const std::vector<double>& y) {
  double sse = 0;
  for (size_t i = 0; i < x.size(); ++i) sse += (y[i] - f(x[i])) * (y[i] - f(x[i]));
  return sse;
}

}  // namespace

std::vector<double> average_ranks(const std::vector<double>& x) {
  std::vector<size_t> order(x.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return x[a] < x[b]; });
  std::vector<double> ranks(x.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i + 1;
    while (j < order.size() && x[order[j]] == x[order[i]]) ++j;
    const double avg = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2;  // ranks i+1 … j
    for (size_t k = i; k < j; ++k) ranks[order[k]] = avg;
    i = j;
  }
  return ranks;
}

double pearson(const std::vector<double>& x_in, const std::vector<double>& y_in) {
  check_sizes(x_in, y_in, "pearson");
  if (x_in.size() < 2) return kNaN;
  // A correlation does not change with the scale: computed on scaled copies, sums cannot overflow.
  const auto x = scaled(x_in, scale_exponent(x_in)), y = scaled(y_in, scale_exponent(y_in));
  const double mx = mean(x), my = mean(y);
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  if (sxx == 0 || syy == 0) return kNaN;
  return std::clamp(sxy / (std::sqrt(sxx) * std::sqrt(syy)), -1.0, 1.0);
}

double spearman(const std::vector<double>& x, const std::vector<double>& y) {
  check_sizes(x, y, "spearman");
  return pearson(average_ranks(x), average_ranks(y));
}

// Knight's O(n log n) count, as scipy does it: order by x (ties by y), then the discordant pairs
// are the inversions of y in that order, counted with a Fenwick tree over y's dense ranks.
double kendall_tau_b(const std::vector<double>& x, const std::vector<double>& y) {
  check_sizes(x, y, "kendall_tau_b");
  const size_t n = x.size();
  if (n < 2) return kNaN;
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return x[a] < x[b] || (x[a] == x[b] && y[a] < y[b]); });
  const auto ry = dense_ranks(y);
  std::vector<double> tree(n + 1, 0);
  double discordant = 0, seen = 0;
  for (size_t i : order) {
    double not_greater = 0;  // earlier items whose y ≤ this y
    for (size_t k = ry[i] + 1; k > 0; k -= k & (~k + 1)) not_greater += tree[k];
    discordant += seen - not_greater;
    for (size_t k = ry[i] + 1; k <= n; k += k & (~k + 1)) tree[k] += 1;
    seen += 1;
  }
  const double total = static_cast<double>(n) * static_cast<double>(n - 1) / 2;
  const double x_ties = tied_pairs(n, [&](size_t a, size_t b) { return x[order[a]] == x[order[b]]; });
  const double joint_ties =
      tied_pairs(n, [&](size_t a, size_t b) { return x[order[a]] == x[order[b]] && y[order[a]] == y[order[b]]; });
  std::vector<double> ys = y;
  std::sort(ys.begin(), ys.end());
  const double y_ties = tied_pairs(n, [&](size_t a, size_t b) { return ys[a] == ys[b]; });
  if (x_ties == total || y_ties == total) return kNaN;
  const double concordant_minus_discordant = total - x_ties - y_ties + joint_ties - 2 * discordant;
  return std::clamp(concordant_minus_discordant / std::sqrt(total - x_ties) / std::sqrt(total - y_ties), -1.0, 1.0);
}

double Logistic4::operator()(double x) const {
  const auto& b = beta;
  return (b[0] - b[1]) * sigmoid((x - b[2]) / std::abs(b[3])) + b[1];
}

std::vector<double> Logistic4::operator()(const std::vector<double>& x) const {
  std::vector<double> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = (*this)(x[i]);
  return out;
}

// The fit runs on standardised x and y, so one set of tolerances serves scores on any scale, and
// maps the parameters back at the end. Means and deviations come from copies scaled by a power
// of two (scale_exponent), which the parameters are scaled back from.
Logistic4 fit_logistic4(const std::vector<double>& x_in, const std::vector<double>& y_in) {
  check_sizes(x_in, y_in, "fit_logistic4");
  if (x_in.empty()) return {};
  const int ex = scale_exponent(x_in), ey = scale_exponent(y_in);
  const auto x = scaled(x_in, ex), y = scaled(y_in, ey);
  const double mx = mean(x), my = mean(y), sx = population_std(x), sy = population_std(y);
  if (!(sx > 0)) return {{std::ldexp(my, ey), std::ldexp(my, ey), std::ldexp(mx, ex), 1.0}};
  const double ys_scale = sy > 0 ? sy : 1.0;
  std::vector<double> u(x.size()), v(y.size());
  for (size_t i = 0; i < x.size(); ++i) {
    u[i] = (x[i] - mx) / sx;
    v[i] = (y[i] - my) / ys_scale;
  }
  const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  Logistic4 f{{*hi, *lo, 0.0, 0.25}};
  if (pearson(u, v) < 0) std::swap(f.beta[0], f.beta[1]);

  double sse = sum_squared_residuals(f, u, v), lambda = 1e-3;
  for (int iter = 0; iter < 1000 && lambda < 1e16; ++iter) {
    std::array<std::array<double, 4>, 4> jtj{};
    std::array<double, 4> jtr{};
    const auto& b = f.beta;
    const double scale = std::abs(b[3]), sign = b[3] < 0 ? -1.0 : 1.0;
    for (size_t i = 0; i < u.size(); ++i) {
      const double z = (u[i] - b[2]) / scale, s = sigmoid(z), slope = (b[0] - b[1]) * s * (1 - s);
      const std::array<double, 4> g = {s, 1 - s, -slope / scale, -slope * z / scale * sign};
      const double r = v[i] - f(u[i]);
      for (int p = 0; p < 4; ++p) {
        jtr[p] += g[p] * r;
        for (int q = 0; q < 4; ++q) jtj[p][q] += g[p] * g[q];
      }
    }
    // Retry with more damping until a step lowers the error or the damping says we are done.
    bool improved = false;
    while (!improved && lambda < 1e16) {
      auto a = jtj;
      for (int p = 0; p < 4; ++p) a[p][p] += lambda * std::max(jtj[p][p], 1e-12);
      std::array<double, 4> d{};
      if (solve4(a, jtr, d)) {
        Logistic4 trial = f;
        for (int p = 0; p < 4; ++p) trial.beta[p] += d[p];
        const double trial_sse = trial.beta[3] != 0 ? sum_squared_residuals(trial, u, v) : kNaN;
        if (trial_sse <= sse) {
          const double gain = sse - trial_sse;
          f = trial;
          sse = trial_sse;
          lambda = std::max(lambda / 10, 1e-12);
          improved = true;
          if (gain <= 1e-15 * std::max(sse, 1e-300)) lambda = 1e16;  // converged
        }
      }
      if (!improved) lambda *= 10;
    }
  }
  const auto& a = f.beta;
  return {{std::ldexp(a[0] * ys_scale + my, ey), std::ldexp(a[1] * ys_scale + my, ey), std::ldexp(mx + sx * a[2], ex),
           std::ldexp(sx * std::abs(a[3]), ex)}};
}

Agreement agreement(const std::vector<double>& pred, const std::vector<double>& gt) {
  check_sizes(pred, gt, "agreement");
  if (pred.size() < 2)
    throw std::invalid_argument("agreement: " + std::to_string(pred.size()) + " items; correlations need at least two");
  for (size_t i = 0; i < pred.size(); ++i)
    if (!std::isfinite(pred[i]) || !std::isfinite(gt[i]))
      throw std::invalid_argument("agreement: item " + std::to_string(i) + " is not a finite number (prediction " +
                                  text(pred[i]) + ", ground truth " + text(gt[i]) + ")");
  Agreement out;
  out.n = pred.size();
  if (is_constant(pred))
    out.undefined = "every prediction is " + text(pred[0]);
  else if (is_constant(gt))
    out.undefined = "every ground-truth score is " + text(gt[0]);
  out.srcc = spearman(pred, gt);
  out.plcc = pearson(pred, gt);
  out.krcc = kendall_tau_b(pred, gt);
  // The curve, fitted and applied on copies scaled by powers of two, and the RMSE scaled back:
  // the same numbers, and no overflow where the scores (or the curve's asymptotes) near ±1e308.
  const int eg = scale_exponent(gt);
  const auto p = scaled(pred, scale_exponent(pred)), g = scaled(gt, eg);
  const auto mapped = fit_logistic4(p, g)(p);
  out.plcc_logistic = pearson(mapped, g);
  double sse = 0;
  for (size_t i = 0; i < g.size(); ++i) sse += (mapped[i] - g[i]) * (mapped[i] - g[i]);
  out.rmse_logistic = std::ldexp(std::sqrt(sse / g.size()), eg);
  return out;
}

Agreement undefined_agreement(size_t n, const std::string& why) { return {n, kNaN, kNaN, kNaN, kNaN, kNaN, why}; }

}  // namespace qalign::metrics
