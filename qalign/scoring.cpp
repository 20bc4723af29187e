#include "qalign/scoring.h"

#include <cmath>

namespace qalign {

LevelScores score_from_logits(const torch::Tensor& logits, const std::vector<int64_t>& level_ids) {
  return score_from_level_logits(logits.index_select(-1, torch::tensor(level_ids, torch::kInt64).to(logits.device())));
}

LevelScores score_from_level_logits(const torch::Tensor& level_logits) {
  LevelScores s;
  s.probs = torch::softmax(level_logits.to(torch::kFloat32), -1);
  const auto w5 = torch::tensor({5.0f, 4.0f, 3.0f, 2.0f, 1.0f}, s.probs.options());
  const auto w01 = torch::tensor({1.0f, 0.75f, 0.5f, 0.25f, 0.0f}, s.probs.options());
  s.score5 = torch::matmul(s.probs, w5);
  s.score01 = torch::matmul(s.probs, w01);
  s.level = s.probs.argmax(-1);
  return s;
}

std::string nonfinite_score(const LevelScores& s, int64_t b) {
  const double score5 = s.score5[b].item<double>(), score01 = s.score01[b].item<double>();
  if (std::isfinite(score5) && std::isfinite(score01)) return "";
  const double bad = std::isfinite(score5) ? score01 : score5;
  const std::string word = std::isnan(bad) ? "NaN" : bad > 0 ? "Inf" : "-Inf";
  return "score: the model gave " + word + ", not a finite score (its weights or activations hold NaN or Inf)";
}

}  // namespace qalign
