#pragma once
// Where each sample's answer has its level word predicted: the position one before the first
// supervised label that is a level word. The soft-label term and the regression head both read
// the hidden state there, as scoring reads the last prompt position.
#include <torch/torch.h>

#include <string>
#include <vector>

namespace qalign::train {

// labels [B,L] after the image splice; level_ids the five words' ids. Returns flat indices
// b·L + t into [B·L]. A sample whose answer holds no level word is an error naming its id and
// `field`, the setting that needs one.
std::vector<int64_t> level_word_positions(const torch::Tensor& labels, const std::vector<int64_t>& level_ids,
                                          const std::vector<std::string>& ids, const std::string& field);

}  // namespace qalign::train
