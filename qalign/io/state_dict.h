#pragma once
// A checkpoint's tensors by name, ordered by name (as HF's index files list them).
#include <torch/torch.h>

#include <map>
#include <string>

namespace qalign::io {

using StateDict = std::map<std::string, torch::Tensor>;

// safetensors dtype names ("F32", "BF16", ...) <-> torch dtypes; throws qalign::Error naming
// `source` and `field` for a name it does not know.
torch::Dtype dtype_from_safetensors(const std::string& name, const std::string& source, const std::string& field);
std::string dtype_to_safetensors(torch::Dtype dtype);

}  // namespace qalign::io
