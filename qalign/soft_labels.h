#pragma once
// DeQA-Score's soft level targets (build_soft_labels/gen_soft_label.py, reproduced number for
// number; tests/fixtures/deqa-soft-labels): instead of one level word, a probability for each of
// the five levels, from a Gaussian around the sample's MOS with its raters' standard deviation.
//
// Scores are first mapped to the level scale 1 (bad) … 5 (excellent) with the dataset's minimum
// and maximum MOS: mos_norm = 4·(mos − min)/(max − min) + 1, std_norm = 4·std/(max − min).
#include <array>
#include <optional>
#include <string>

#include "qalign/syllabus.h"

namespace qalign {

// How the Gaussian becomes five raw numbers: its density at 5, 4, 3, 2, 1 ("pdf", DeQA's choice
// for KonIQ and KADID) or its mass on [x − 0.5, x + 0.5] ("cdf", for small-std data like SPAQ).
enum class Density { kPdf, kCdf };
Density parse_density(const std::string& word, const std::string& source, const std::string& field);

struct SoftLabelOptions {
  Density density = Density::kPdf;
  double thre_std = 0.2;   // below this std_norm the two-level split is used
  double thre_diff = 0.1;  // the fitted expectation may miss mos_norm by at most this much
};

// Five values, best first: excellent, good, fair, poor, bad.
using LevelProbs = std::array<double, kNumLevels>;

struct SoftLabel {
  double mos_norm = 0;
  double std_norm = 0;
  LevelProbs raw{};     // the density values; NaN when std is 0 (the Gaussian is undefined)
  LevelProbs probs{};   // the training target
  bool binary = false;  // the two-level split was used
};

// The target: raw values mapped by α·p + β (clipped at 0) so that they sum to 1 and their
// expectation over 5 … 1 equals mos_norm; when std_norm < thre_std, or the clipping moves the
// expectation by more than thre_diff, the two-level split binary_level_probs(mos_norm) instead.
SoftLabel deqa_soft_label(double mos, double std, MosRange range, const SoftLabelOptions& options);

// Splits the mass between the two levels around mos_norm ∈ [1, 5] so that the expectation is
// mos_norm (intervals widened by 1e-8 on both sides, as upstream). Throws outside [1, 5].
LevelProbs binary_level_probs(double mos_norm);

// DeQA-Score's one-hot level (get_level): intervals closed on the right and widened by 1e-8, so
// both min and max belong to the range, unlike Syllabus's [m, M). nullopt outside the range.
std::optional<int> deqa_level(double mos, MosRange range);

// DeQA-Score's labeler: its level word and soft probabilities; `std` is required. Out-of-range
// scores are dropped or clamped into [min, max] before labelling.
class SoftLabeler : public Labeler {
 public:
  SoftLabeler(MosRange range, OutOfRange policy, SoftLabelOptions options, const std::string& source);
  std::optional<LevelTarget> label(double mos, std::optional<double> std) const override;
  bool needs_std() const override { return true; }

 private:
  MosRange range_;
  OutOfRange policy_;
  SoftLabelOptions options_;
  std::string source_;
};

}  // namespace qalign
