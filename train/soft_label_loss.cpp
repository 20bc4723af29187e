#include "train/soft_label_loss.h"

#include "qalign/base/error.h"
#include "qalign/base/host_to_device.h"
#include "train/level_position.h"

namespace qalign::train {

torch::Tensor soft_level_kl(model::Owl2ForCausalLM& m, const torch::Tensor& hidden, const torch::Tensor& labels,
                            const std::vector<int64_t>& level_ids, const std::vector<std::vector<double>>& targets,
                            const std::vector<std::string>& ids) {
  const int64_t B = labels.size(0), L = labels.size(1);
  const auto positions = level_word_positions(labels, level_ids, ids, "level_probs");
  for (int64_t b = 0; b < B; ++b)
    if (targets[static_cast<size_t>(b)].size() != level_ids.size())
      fail(ids[static_cast<size_t>(b)], "level_probs", "missing: level_labels is soft, so every record needs one");
  const auto device = hidden.device();
  const auto at = hidden.reshape({B * L, hidden.size(-1)})
                      .index_select(0, host_to_device(torch::tensor(positions, torch::kInt64), device));  // [B,E]
  const auto level_logits =
      m->logits(at)
          .to(torch::kFloat32)
          .index_select(1, host_to_device(torch::tensor(level_ids, torch::kInt64), device));  // [B,5]
  const auto log_q = torch::log_softmax(level_logits, 1);
  std::vector<float> flat;
  for (const auto& t : targets)
    for (double p : t) flat.push_back(static_cast<float>(p));
  const auto p = host_to_device(torch::tensor(flat).reshape({B, static_cast<int64_t>(level_ids.size())}), device);
  // 0 · log 0 = 0: levels the target rules out add nothing.
  const auto log_p = torch::where(p > 0, torch::log(p), torch::zeros_like(p));
  return (p * (log_p - log_q)).sum(1).mean();
}

}  // namespace qalign::train
