#pragma once
// The model a loader fills, tensor by tensor or piece by piece. With --quantize, the linears the
// mode quantises are built without storage and each weight is quantised as soon as all of it has
// been read: memory holds one such weight in floats at a time, never the whole float model.
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "qalign/io/state_dict.h"
#include "qalign/model/owl2.h"
#include "qalign/model/quantize.h"

namespace qalign::io {

class LoadTarget {
 public:
  // Every tensor uninitialised (all are about to be loaded); fails naming the option and the
  // layer for a quantisation the model's shapes do not allow, before anything is allocated.
  LoadTarget(const model::ModelConfig& config, const torch::TensorOptions& opts, const model::QuantizeOptions& q);
  // model::row_read_tensors in a quantising load on the CPU, which uses them from the
  // memory-mapped checkpoint (use_mapped) instead of copying them, so only the rows scoring reads
  // become resident. Else empty.
  std::vector<std::string> mappable() const;
  // Tensor `name` is `view`, a tensor of a mapped checkpoint file (which it keeps open), when its
  // dtype and shape are the model's; later pieces of that name are then ignored.
  void use_mapped(const std::string& name, const torch::Tensor& view);
  // Elements [offset, offset + part.numel()) of tensor `name`, flattened; names that are not the
  // model's are ignored (the checkpoint was checked against the model before).
  void put(const std::string& name, const torch::Tensor& part, int64_t offset);
  // The loaded model in eval mode; a quantised weight not read in full fails naming `source`.
  model::Owl2ForCausalLM finish(const std::string& source);

 private:
  struct Pending {
    model::LinearImpl* linear;
    torch::Tensor floats;  // allocated at its first piece, freed once quantised
    int64_t filled = 0;
  };
  torch::TensorOptions opts_;
  model::QuantizeOptions quantize_;
  model::Owl2ForCausalLM model_{nullptr};
  StateDict floats_;                        // kept as loaded, by name
  std::map<std::string, Pending> pending_;  // weights still to quantise, by name
};

}  // namespace qalign::io
