#include "train/master_weights.h"

namespace qalign::train {

MasterWeights::MasterWeights(const std::vector<std::pair<std::string, torch::Tensor>>& trainable, bool separate)
    : separate_(separate) {
  for (const auto& [name, p] : trainable) {
    names_.push_back(name);
    model_.push_back(p);
  }
  if (!separate_) {
    masters_ = model_;
    return;
  }
  torch::NoGradGuard no_grad;
  for (const auto& p : model_) masters_.push_back(p.detach().to(torch::kFloat32).clone().requires_grad_(true));
}

void MasterWeights::accumulate_grads() {
  for (size_t i = 0; i < model_.size(); ++i) accumulate_grad(i);
}

void MasterWeights::accumulate_grad(size_t i) {
  if (!separate_) return;
  torch::NoGradGuard no_grad;
  auto g = model_[i].grad();
  if (!g.defined()) return;
  auto& mg = masters_[i].mutable_grad();
  if (mg.defined())
    mg.add_(g.to(torch::kFloat32));
  else
    mg = g.to(torch::kFloat32).clone();
  model_[i].mutable_grad() = torch::Tensor();
}

void MasterWeights::copy_to_model() {
  if (!separate_) return;
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < model_.size(); ++i) model_[i].copy_(masters_[i]);
}

void MasterWeights::zero_grad() {
  for (auto& t : masters_) t.mutable_grad() = torch::Tensor();
  for (auto& t : model_) t.mutable_grad() = torch::Tensor();
}

}  // namespace qalign::train
