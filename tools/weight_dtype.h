#pragma once
// The dtype a command writes weights in (--dtype of init and export).
#include <torch/torch.h>

#include <string>

namespace qalign::tools {

// "bfloat16", "float16" or "float32"; anything else fails naming --dtype.
torch::Dtype parse_weight_dtype(const std::string& name);

}  // namespace qalign::tools
