#include "qalign/soft_labels.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "qalign/base/error.h"

namespace qalign {

namespace {

constexpr double kEps = 1e-8;  // upstream's interval margin
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// scipy.stats.norm.pdf: exp(−z²/2)/√(2π), divided by the scale; undefined for scale 0.
double normal_pdf(double x, double loc, double scale) {
  if (!(scale > 0)) return kNaN;
  const double z = (x - loc) / scale;
  return std::exp(-(z * z) / 2.0) / std::sqrt(2 * M_PI) / scale;
}

// scipy.special.ndtr (cephes): erf near 0, erfc in the tails, where it keeps its precision.
double ndtr(double a) {
  const double x = a * M_SQRT1_2, z = std::fabs(x);
  if (z < M_SQRT1_2) return 0.5 + 0.5 * std::erf(x);
  const double y = 0.5 * std::erfc(z);
  return x > 0 ? 1.0 - y : y;
}

double normal_cdf(double x, double loc, double scale) {
  if (!(scale > 0)) return kNaN;
  return ndtr((x - loc) / scale);
}

// Σ p·(5, 4, 3, 2, 1) for probabilities listed best first.
double expectation(const LevelProbs& p) {
  double s = 0;
  for (int i = 0; i < kNumLevels; ++i) s += p[i] * (kNumLevels - i);
  return s;
}

}  // namespace

Density parse_density(const std::string& word, const std::string& source, const std::string& field) {
  if (word == "pdf") return Density::kPdf;
  if (word == "cdf") return Density::kCdf;
  fail(source, field, "\"" + word + "\" is neither \"pdf\" nor \"cdf\"");
}

LevelProbs binary_level_probs(double mos_norm) {
  // Four unit intervals [1,2] … [4,5]; the score splits between an interval's two ends.
  const double lo = 1.0, hi = 5.0;
  std::array<double, kNumLevels> bottom_up{};
  for (int idx = 1; idx < kNumLevels; ++idx) {
    const double left = lo + (idx - 1) / 4.0 * (hi - lo) - kEps;
    const double right = lo + idx / 4.0 * (hi - lo) + kEps;
    if (mos_norm > left && mos_norm <= right) {
      bottom_up[idx - 1] = (right - mos_norm) / (right - left);
      bottom_up[idx] = (mos_norm - left) / (right - left);
      return {bottom_up[4], bottom_up[3], bottom_up[2], bottom_up[1], bottom_up[0]};
    }
  }
  fail("soft labels", "mos_norm", std::to_string(mos_norm) + " is outside the level scale [1, 5]");
}

std::optional<int> deqa_level(double mos, MosRange range) {
  for (int idx = 1; idx <= kNumLevels; ++idx) {
    const double left = range.min + (idx - 1) / 5.0 * (range.max - range.min) - kEps;
    const double right = range.min + idx / 5.0 * (range.max - range.min) + kEps;
    if (mos > left && mos <= right) return idx - 1;
  }
  return std::nullopt;
}

SoftLabel deqa_soft_label(double mos, double std, MosRange range, const SoftLabelOptions& options) {
  SoftLabel out;
  out.mos_norm = 4 * (mos - range.min) / (range.max - range.min) + 1;
  out.std_norm = 4 * std / (range.max - range.min);
  for (int i = 0; i < kNumLevels; ++i) {
    const double x = kNumLevels - i;
    out.raw[i] = options.density == Density::kCdf
                     ? normal_cdf(x + 0.5, out.mos_norm, out.std_norm) - normal_cdf(x - 0.5, out.mos_norm, out.std_norm)
                     : normal_pdf(x, out.mos_norm, out.std_norm);
  }
  // α·Σp + 5β = 1 and α·Σp·x + 15β = mos_norm (adjust_gaussian_bar; 1e-9 keeps it finite).
  double sum = 0;
  for (double p : out.raw) sum += p;
  const double alpha = (out.mos_norm - 3) / (expectation(out.raw) - 3. * sum + 1e-9);
  const double beta = (1. - alpha * sum) / 5.;
  for (int i = 0; i < kNumLevels; ++i) {
    const double p = out.raw[i] * alpha + beta;
    out.probs[i] = std::isnan(p) ? p : std::max(p, 0.0);
  }
  const double diff = std::fabs(expectation(out.probs) - out.mos_norm);
  if (out.std_norm < options.thre_std || diff > options.thre_diff) {
    out.probs = binary_level_probs(out.mos_norm);
    out.binary = true;
  }
  return out;
}

SoftLabeler::SoftLabeler(MosRange range, OutOfRange policy, SoftLabelOptions options, const std::string& source)
    : range_(range), policy_(policy), options_(options), source_(source) {
  if (!std::isfinite(range.min) || !std::isfinite(range.max) || !(range.min < range.max))
    fail(source, "range", "needs finite MIN < MAX");
  if (!std::isfinite(range.max - range.min))  // every level bound would be NaN
    fail(source, "range",
         "MAX - MIN is wider than a double holds (" + nlohmann::json(range.min).dump() + " … " +
             nlohmann::json(range.max).dump() + "); rescale the scores");
}

std::optional<LevelTarget> SoftLabeler::label(double mos, std::optional<double> std) const {
  if (!std) fail(source_, "std", "soft labels need each sample's rater standard deviation");
  if (!(*std >= 0) || !std::isfinite(*std))
    fail(source_, "std", std::to_string(*std) + " is not a finite non-negative number");
  if (std::isnan(mos)) return std::nullopt;
  auto level = deqa_level(mos, range_);
  if (!level) {
    if (policy_ == OutOfRange::kDrop) return std::nullopt;
    mos = std::clamp(mos, range_.min, range_.max);
    level = deqa_level(mos, range_);
  }
  const SoftLabel soft = deqa_soft_label(mos, *std, range_, options_);
  return LevelTarget{*level, std::vector<double>(soft.probs.begin(), soft.probs.end())};
}

}  // namespace qalign
