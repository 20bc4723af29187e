#pragma once
// float32 master copies of the trainable parameters (DeepSpeed's bf16 recipe): the model computes
// in its own dtype (bfloat16 with bf16: true), gradients are summed into float32 masters after
// each micro-batch, the optimizer updates the masters and the result is rounded back into the
// model. Without bf16 the masters are the parameters themselves and nothing is copied.
#include <torch/torch.h>

#include <string>
#include <vector>

namespace qalign::train {

class MasterWeights {
 public:
  // `trainable`: the model's parameters that require grad, by name, still in float32. With
  // `separate`, float32 copies are taken now, before the model is cast to its compute dtype.
  MasterWeights(const std::vector<std::pair<std::string, torch::Tensor>>& trainable, bool separate);

  // True when the masters are separate tensors.
  bool separate() const { return separate_; }
  const std::vector<std::string>& names() const { return names_; }
  const std::vector<torch::Tensor>& masters() const { return masters_; }

  // Adds the model's gradients into the masters' and clears the model's (no-op when not separate).
  void accumulate_grads();
  // The same for parameter i alone.
  void accumulate_grad(size_t i);
  // Rounds the masters into the model's parameters (no-op when not separate).
  void copy_to_model();
  void zero_grad();

 private:
  bool separate_ = false;
  std::vector<std::string> names_;
  std::vector<torch::Tensor> model_, masters_;
};

}  // namespace qalign::train
