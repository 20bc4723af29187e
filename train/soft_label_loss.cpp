#include "train/soft_label_loss.h"

#include <algorithm>

#include "qalign/error.h"

namespace qalign::train {

torch::Tensor soft_level_kl(model::Owl2ForCausalLM& m, const torch::Tensor& hidden, const torch::Tensor& labels,
                            const std::vector<int64_t>& level_ids, const std::vector<std::vector<double>>& targets,
                            const std::vector<std::string>& ids) {
  const int64_t B = labels.size(0), L = labels.size(1);
  const auto labels_cpu = labels.to(torch::kCPU).contiguous();
  const auto* lab = labels_cpu.data_ptr<int64_t>();
  std::vector<int64_t> positions;  // where the level word is predicted: one before it
  for (int64_t b = 0; b < B; ++b) {
    int64_t found = -1;
    for (int64_t t = 1; t < L && found < 0; ++t)
      if (std::find(level_ids.begin(), level_ids.end(), lab[b * L + t]) != level_ids.end()) found = t - 1;
    if (found < 0) fail(ids[static_cast<size_t>(b)], "level_probs", "its answer has no level word to put the soft target on");
    if (targets[static_cast<size_t>(b)].size() != level_ids.size())
      fail(ids[static_cast<size_t>(b)], "level_probs", "missing: level_labels is soft, so every record needs one");
    positions.push_back(b * L + found);
  }
  const auto device = hidden.device();
  const auto at = hidden.reshape({B * L, hidden.size(-1)})
                      .index_select(0, torch::tensor(positions, torch::kInt64).to(device));  // [B,E]
  const auto level_logits = m->logits(at).to(torch::kFloat32).index_select(
      1, torch::tensor(level_ids, torch::kInt64).to(device));  // [B,5]
  const auto log_q = torch::log_softmax(level_logits, 1);
  std::vector<float> flat;
  for (const auto& t : targets)
    for (double p : t) flat.push_back(static_cast<float>(p));
  const auto p = torch::tensor(flat).reshape({B, static_cast<int64_t>(level_ids.size())}).to(device);
  // 0 · log 0 = 0: levels the target rules out add nothing.
  const auto log_p = torch::where(p > 0, torch::log(p), torch::zeros_like(p));
  return (p * (log_p - log_q)).sum(1).mean();
}

}  // namespace qalign::train
