#pragma once
// Gradient norm and clipping as torch.nn.utils.clip_grad_norm_ computes them (L2 of the per-tensor
// L2 norms; scale min(1, max_norm / (norm + 1e-6)) applied to every gradient).
#include <torch/torch.h>

#include <vector>

namespace qalign::train {

// Global L2 norm of the defined gradients of `params` (a 0-dim float32 tensor; 0 when none).
torch::Tensor global_grad_norm(const std::vector<torch::Tensor>& params);

// Scales the gradients so their global norm is at most max_norm, given their norm `total`.
void clip_grads(const std::vector<torch::Tensor>& params, double max_norm, const torch::Tensor& total);

}  // namespace qalign::train
