#pragma once
// Fresh weights for training from scratch, drawn as the Hugging Face models draw theirs: every
// matrix, embedding and learned vector (queries, cls, positions) from N(0, initializer_range) of
// the part it belongs to, biases zero, norms one. The scale matters for small models: the vision
// tower's range sets how nonlinear its first features are.
#include <cstdint>

#include "qalign/model/owl2.h"

namespace qalign::model {

struct InitRanges {
  double vision = 0.02, abstractor = 0.02, language = 0.02;
};

// The three ranges a config.json states (initializer_range at the top and in each visual part);
// 0.02 where a key is absent, as in the authors' configs. A non-positive or non-number value
// fails naming `path` and the key.
InitRanges init_ranges_from_config_file(const std::string& path);

void initialize_weights(Owl2ForCausalLMImpl& m, const InitRanges& ranges, uint64_t seed);

// Fills parameter `name` (of any shape and dtype) as initialize_weights does, drawing from `gen`:
// parameters drawn one by one in the model's order from one generator get initialize_weights's values.
void initialize_parameter(const std::string& name, torch::Tensor& p, const InitRanges& ranges, at::Generator& gen);

}  // namespace qalign::model
