#pragma once
// The ablation's regression objective (answer_format: regression): the model's score head reads
// the hidden state where the level word would be predicted and is fitted to the record's MOS by
// mean squared error, on the MOS's own scale.
#include <torch/torch.h>

#include <string>
#include <vector>

#include "qalign/model/owl2.h"

namespace qalign::train {

// hidden [B,L,E], labels [B,L] after the splice; mos one per sample (NaN: the record has none,
// an error naming its id).
torch::Tensor score_head_mse(model::Owl2ForCausalLM& m, const torch::Tensor& hidden, const torch::Tensor& labels,
                             const std::vector<int64_t>& level_ids, const std::vector<double>& mos,
                             const std::vector<std::string>& ids);

}  // namespace qalign::train
