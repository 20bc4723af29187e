#include "qalign/scoring.h"

namespace qalign {

LevelScores score_from_logits(const torch::Tensor& logits, const std::vector<int64_t>& level_ids) {
  const auto ids = torch::tensor(level_ids, torch::kInt64).to(logits.device());
  LevelScores s;
  s.probs = torch::softmax(logits.index_select(-1, ids).to(torch::kFloat32), -1);
  const auto w5 = torch::tensor({5.0f, 4.0f, 3.0f, 2.0f, 1.0f}, s.probs.options());
  const auto w01 = torch::tensor({1.0f, 0.75f, 0.5f, 0.25f, 0.0f}, s.probs.options());
  s.score5 = torch::matmul(s.probs, w5);
  s.score01 = torch::matmul(s.probs, w01);
  s.level = s.probs.argmax(-1);
  return s;
}

}  // namespace qalign
