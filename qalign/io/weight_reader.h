#pragma once
// A checkpoint's tensors by name, one at a time: safetensors shards stay memory-mapped and each
// tensor read gives its mapped pages back, so reading a whole 16 GB checkpoint tensor by tensor
// costs one tensor of memory (a .bin file is read whole, as its pickle requires).
#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "qalign/io/safetensors.h"
#include "qalign/io/state_dict.h"

namespace qalign::io {

class WeightReader {
 public:
  // A model folder, an index file or one weights file (io::resolve_weights).
  explicit WeightReader(const std::string& path);
  const std::string& source() const { return source_; }
  // Every tensor's name, in the order of the files.
  const std::vector<std::string>& names() const { return names_; }
  bool contains(const std::string& name) const;
  // A copy of tensor `name` in `dtype` (a missing name fails naming the source).
  torch::Tensor read(const std::string& name, torch::Dtype dtype) const;
  // Elements [offset, offset + out.numel()) of tensor `name` flattened, cast into `out`: a ZeRO-3
  // rank's chunk of a parameter, read without the rest of it.
  void read_into(const std::string& name, int64_t offset, torch::Tensor out) const;

 private:
  std::string source_;
  std::vector<std::string> names_;
  std::map<std::string, std::shared_ptr<SafetensorsFile>> mapped_;  // by tensor name
  StateDict loaded_;                                                // .bin tensors
};

}  // namespace qalign::io
