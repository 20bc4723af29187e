#pragma once
// The restricted unpickler behind load_torch_bin (see torch_bin.h). Separate so that it can be
// fuzzed on its own.
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace qalign::io {

// Returns the bytes of storage `key` (the archive's data/<key> record) viewed as `dtype`,
// holding exactly `numel` elements.
using StorageLoader = std::function<torch::Tensor(const std::string& key, torch::Dtype dtype, int64_t numel)>;

// Unpickles a state dict: a (possibly Ordered) dict of name -> tensor. Throws qalign::Error
// naming `source` and the offending opcode, global or entry.
std::vector<std::pair<std::string, torch::Tensor>> unpickle_state_dict(const uint8_t* data, size_t size,
                                                                       const std::string& source,
                                                                       const StorageLoader& load_storage);

}  // namespace qalign::io
