#include "train/grad_clip.h"

namespace qalign::train {

torch::Tensor global_grad_norm(const std::vector<torch::Tensor>& params) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> norms;
  for (const auto& p : params)
    if (p.grad().defined()) norms.push_back(torch::linalg_vector_norm(p.grad(), 2));
  if (norms.empty()) return torch::zeros({}, torch::kFloat32);
  return torch::linalg_vector_norm(torch::stack(norms), 2);
}

void clip_grads(const std::vector<torch::Tensor>& params, double max_norm, const torch::Tensor& total) {
  torch::NoGradGuard no_grad;
  const auto coef = torch::clamp_max(max_norm / (total + 1e-6), 1.0);
  for (const auto& p : params)
    if (p.grad().defined()) p.grad().mul_(coef.to(p.grad().device()));
}

}  // namespace qalign::train
