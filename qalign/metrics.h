#pragma once
// Agreement between predicted scores and ground truth, as IQA papers report it: SRCC, PLCC and
// KRCC on the raw predictions (the Q-Align authors' numbers, scipy's spearmanr / pearsonr /
// kendalltau), and PLCC and RMSE after the 4-parameter logistic mapping many papers fit first.
// A statistic that is undefined (fewer than two items, a constant vector) is NaN, as in scipy.
#include <array>
#include <cstddef>
#include <string>
#include <vector>

namespace qalign::metrics {

// Ranks 1..n, tied values sharing the mean of their ranks (scipy.stats.rankdata "average").
std::vector<double> average_ranks(const std::vector<double>& x);

// Pearson linear correlation (PLCC).
double pearson(const std::vector<double>& x, const std::vector<double>& y);
// Spearman rank correlation (SRCC): Pearson on average ranks.
double spearman(const std::vector<double>& x, const std::vector<double>& y);
// Kendall's tau-b (KRCC), which corrects for ties in either vector (scipy's default variant).
double kendall_tau_b(const std::vector<double>& x, const std::vector<double>& y);

// f(x) = (b1 − b2) / (1 + exp(−(x − b3) / |b4|)) + b2: a monotone S-curve from b2 to b1.
struct Logistic4 {
  std::array<double, 4> beta{};
  double operator()(double x) const;
  std::vector<double> operator()(const std::vector<double>& x) const;
};

// Least-squares fit of y ≈ f(x) by Levenberg–Marquardt, started from b1 = max y, b2 = min y
// (swapped when x and y fall together), b3 = mean x, b4 = std x / 4. Needs two or more distinct
// x; otherwise the returned curve is the constant mean of y.
Logistic4 fit_logistic4(const std::vector<double>& x, const std::vector<double>& y);

struct Agreement {
  size_t n = 0;
  double srcc = 0, plcc = 0, krcc = 0;
  double plcc_logistic = 0, rmse_logistic = 0;  // of f(pred) against gt, f fitted pred → gt
  // Why the correlations are NaN ("" when they are numbers), for a report to say so.
  std::string undefined;
};

// All of the above for one dataset. Throws std::invalid_argument when the sizes differ, when
// there are fewer than two items, or when a value is not finite: such metrics would be NaN, or
// a number that depends only on where the NaNs sort. A constant vector gives NaN correlations
// and says so in `undefined`.
Agreement agreement(const std::vector<double>& pred, const std::vector<double>& gt);
// Every statistic NaN, `undefined` saying why: for a dataset that could not be measured.
Agreement undefined_agreement(size_t n, const std::string& why);

}  // namespace qalign::metrics
