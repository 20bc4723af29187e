#include "train/regression_loss.h"

#include <cmath>

#include "qalign/base/error.h"
#include "qalign/base/host_to_device.h"
#include "train/level_position.h"

namespace qalign::train {

torch::Tensor score_head_mse(model::Owl2ForCausalLM& m, const torch::Tensor& hidden, const torch::Tensor& labels,
                             const std::vector<int64_t>& level_ids, const std::vector<double>& mos,
                             const std::vector<std::string>& ids) {
  if (!m->score_head) fail("training config", "answer_format", "regression needs the model's score_head");
  const int64_t B = labels.size(0), L = labels.size(1);
  const auto positions = level_word_positions(labels, level_ids, ids, "answer_format");
  std::vector<float> target;
  for (int64_t b = 0; b < B; ++b) {
    const double y = mos[static_cast<size_t>(b)];
    if (!std::isfinite(y))
      fail(ids[static_cast<size_t>(b)], "gt_score", "missing: a regression target needs the record's MOS");
    target.push_back(static_cast<float>(y));
  }
  const auto device = hidden.device();
  const auto at = hidden.reshape({B * L, hidden.size(-1)})
                      .index_select(0, host_to_device(torch::tensor(positions, torch::kInt64), device));  // [B,E]
  const auto predicted = m->score(at).to(torch::kFloat32);                                                // [B]
  return torch::mse_loss(predicted, host_to_device(torch::tensor(target), device));
}

}  // namespace qalign::train
