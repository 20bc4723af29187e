#pragma once
// DeQA-Score's soft-label term, trained next to the token loss when level_labels is "soft":
// KL(p ‖ q), p the sample's level probabilities (excellent … bad) and q the softmax over the five
// level words' logits at the position that predicts the answer's level word.
#include <torch/torch.h>

#include <string>
#include <vector>

#include "qalign/model/owl2.h"

namespace qalign::train {

// hidden [B,L,E] and labels [B,L] after the image splice (splice's host_labels: reading them on
// the host costs no device synchronisation); level_ids in excellent … bad order;
// targets one list of five per sample. The mean over the batch. A sample whose supervised
// answer holds no level word is an error naming its id.
torch::Tensor soft_level_kl(model::Owl2ForCausalLM& m, const torch::Tensor& hidden, const torch::Tensor& labels,
                            const std::vector<int64_t>& level_ids, const std::vector<std::vector<double>>& targets,
                            const std::vector<std::string>& ids);

}  // namespace qalign::train
