#pragma once
// AdamW, step for step torch.optim.AdamW (single-tensor path, the one PyTorch takes on the CPU):
// decoupled weight decay, then the moment updates, then the bias-corrected step, with the same
// ATen operations in the same order, so results match PyTorch's bit for bit on the same machine.
//
// Written here rather than taken from torch::optim::AdamW because a training checkpoint must hold
// the moments by parameter name (torch::optim keys them by tensor address) and the schedule
// scales each group's own learning rate (HF's LambdaLR).
#include <torch/torch.h>

#include <string>
#include <vector>

#include "qalign/io/state_dict.h"

namespace qalign::train {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  // torch.optim.AdamW(fused=True), HF's optim "adamw_torch_fused": one vectorised kernel over a
  // group's tensors instead of eight passes per tensor; the same update up to rounding.
  bool fused = false;
};

// Parameters sharing a learning rate and a weight decay (HF builds one group with decay and one
// without). `params[i]` is called `names[i]`; each must be a float32 leaf with .grad().
struct ParamGroup {
  double lr = 0;
  double weight_decay = 0;
  std::vector<std::string> names;
  std::vector<torch::Tensor> params;
};

class AdamW {
 public:
  AdamW(std::vector<ParamGroup> groups, AdamWOptions options);

  // Updates every parameter that has a gradient, its group at lr · lr_scale (the schedule's
  // factor). A parameter without a gradient keeps its moments and its step count.
  void step(double lr_scale);

  const std::vector<ParamGroup>& groups() const { return groups_; }
  // Bytes of the moments held now.
  int64_t state_bytes() const;

  // exp_avg.<name>, exp_avg_sq.<name> (float32) and step.<name> (int64 [1]) for each parameter
  // that has taken a step.
  io::StateDict state_dict() const;
  // Restores what state_dict() wrote; a parameter missing from `sd`, or a tensor naming no
  // parameter, is an error naming `source`. Each of `sd`'s tensors is freed once copied, so the
  // moments are never held twice.
  void load_state_dict(io::StateDict sd, const std::string& source);

 private:
  struct Moments {
    torch::Tensor exp_avg, exp_avg_sq;
    int64_t step = 0;
  };
  void fused_step(size_t gi, double lr);

  std::vector<ParamGroup> groups_;
  AdamWOptions options_;
  std::vector<std::vector<Moments>> state_;  // parallel to groups_[g].params
};

}  // namespace qalign::train
