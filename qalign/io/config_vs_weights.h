#pragma once
// config.json's sizes checked against the checkpoint's tensor shapes before a model of those
// sizes exists: a mistyped size or another model's config.json would otherwise allocate what it
// asks for (terabytes, 10^12 layers) before the tensor-by-tensor comparison could object.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "qalign/model/config.h"

namespace qalign::io {

using TensorShapes = std::map<std::string, std::vector<int64_t>>;

// Fails "CONFIG: KEY: VALUE, but WEIGHTS has TENSOR of shape [...]" (or "... has N layers") on
// the first size the weights contradict. `weights` is how the checkpoint is named in messages.
void check_config_against_weights(const model::ModelConfig& c, const TensorShapes& shapes, const std::string& config,
                                  const std::string& weights);

}  // namespace qalign::io
