#pragma once
// ZeRO stages 1 and 2 (zero_stage in the config): the optimizer state is partitioned across the
// ranks. Rank r owns the r-th of W equal chunks of each gradient bucket (train/grad_sync.h), that
// is a contiguous slice of some parameters; the gradient buckets are reduce-scattered so it
// receives exactly the averaged gradients of its slices, AdamW keeps moments for those slices
// alone and updates them in the float32 masters, and an all-gather per bucket then gives every
// rank every updated slice. The masters themselves stay whole on every rank.
#include <torch/torch.h>

#include <string>
#include <vector>

#include "train/grad_sync.h"
#include "train/process_group.h"

namespace qalign::train {

class ZeroShards {
 public:
  // `names` and `masters` as in MasterWeights; `sync` must have been built on `masters` with
  // scatter.
  ZeroShards(ProcessGroup& group, const GradSync& sync, const std::vector<std::string>& names,
             const std::vector<torch::Tensor>& masters);

  // This rank's slices, named after their parameters: views into the masters, for the optimizer.
  const std::vector<std::string>& names() const { return names_; }
  const std::vector<torch::Tensor>& slices() const { return slices_; }
  // After GradSync::finish(): points each slice's grad() at its part of the averaged chunk.
  void attach_grads();
  // The L2 norm of the whole averaged gradient, summed over the ranks' slices.
  torch::Tensor grad_norm();
  // After the optimizer step: copies every rank's updated slices into every rank's masters.
  void all_gather();

 private:
  struct Slice {
    size_t bucket = 0, param = 0;
    int64_t chunk_offset = 0, param_offset = 0, numel = 0;
  };
  ProcessGroup& group_;
  const GradSync& sync_;
  std::vector<torch::Tensor> masters_;
  std::vector<Slice> layout_;
  std::vector<std::string> names_;
  std::vector<torch::Tensor> slices_;
};

}  // namespace qalign::train
