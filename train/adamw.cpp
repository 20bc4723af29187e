#include "train/adamw.h"

#include <cmath>
#include <set>

#include "qalign/base/error.h"

namespace qalign::train {

AdamW::AdamW(std::vector<ParamGroup> groups, AdamWOptions options) : groups_(std::move(groups)), options_(options) {
  for (const auto& g : groups_) {
    if (g.names.size() != g.params.size())
      throw Error("AdamW: a group has " + std::to_string(g.names.size()) + " names for " +
                  std::to_string(g.params.size()) + " parameters");
    state_.emplace_back(g.params.size());
  }
}

void AdamW::step(double lr_scale) {
  torch::NoGradGuard no_grad;
  const double beta1 = options_.beta1, beta2 = options_.beta2;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const auto& group = groups_[gi];
    const double lr = group.lr * lr_scale;  // LambdaLR: base_lr * lambda(step)
    if (options_.fused) {
      fused_step(gi, lr);
      continue;
    }
    for (size_t i = 0; i < group.params.size(); ++i) {
      auto param = group.params[i];
      const auto grad = param.grad();
      if (!grad.defined()) continue;
      auto& m = state_[gi][i];
      if (m.step == 0) {
        m.exp_avg = torch::zeros_like(param, torch::MemoryFormat::Preserve);
        m.exp_avg_sq = torch::zeros_like(param, torch::MemoryFormat::Preserve);
      }
      m.step += 1;
      if (group.weight_decay != 0) param.mul_(1 - lr * group.weight_decay);
      m.exp_avg.lerp_(grad, 1 - beta1);
      m.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2);
      const double step = static_cast<double>(m.step);
      const double bias_correction1 = 1 - std::pow(beta1, step);
      const double bias_correction2 = 1 - std::pow(beta2, step);
      const double step_size = lr / bias_correction1;
      const double bias_correction2_sqrt = std::pow(bias_correction2, 0.5);
      const auto denom = (m.exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(options_.eps);
      param.addcdiv_(m.exp_avg, denom, -step_size);
    }
  }
}

void AdamW::fused_step(size_t gi, double lr) {
  const auto& group = groups_[gi];
  std::vector<torch::Tensor> params, grads, avgs, sqs, steps;
  for (size_t i = 0; i < group.params.size(); ++i) {
    const auto& param = group.params[i];
    if (!param.grad().defined()) continue;
    auto& m = state_[gi][i];
    if (m.step == 0) {
      m.exp_avg = torch::zeros_like(param, torch::MemoryFormat::Preserve);
      m.exp_avg_sq = torch::zeros_like(param, torch::MemoryFormat::Preserve);
    }
    m.step += 1;
    params.push_back(param);
    grads.push_back(param.grad());
    avgs.push_back(m.exp_avg);
    sqs.push_back(m.exp_avg_sq);
    // The kernel reads the step already counted, as torch increments state_steps before calling it.
    steps.push_back(torch::full({}, static_cast<double>(m.step),
                                torch::TensorOptions().dtype(torch::kFloat32).device(param.device())));
  }
  if (params.empty()) return;
  at::_fused_adamw_(params, grads, avgs, sqs, {}, steps, lr, options_.beta1, options_.beta2, group.weight_decay,
                    options_.eps, /*amsgrad=*/false, /*maximize=*/false);
}

int64_t AdamW::state_bytes() const {
  int64_t total = 0;
  for (const auto& group : state_)
    for (const auto& m : group)
      if (m.step > 0)
        total += (m.exp_avg.numel() * m.exp_avg.element_size()) + (m.exp_avg_sq.numel() * m.exp_avg_sq.element_size());
  return total;
}

io::StateDict AdamW::state_dict() const {
  io::StateDict sd;
  for (size_t gi = 0; gi < groups_.size(); ++gi)
    for (size_t i = 0; i < groups_[gi].params.size(); ++i) {
      const auto& m = state_[gi][i];
      if (m.step == 0) continue;
      const auto& name = groups_[gi].names[i];
      sd["exp_avg." + name] = m.exp_avg;
      sd["exp_avg_sq." + name] = m.exp_avg_sq;
      sd["step." + name] = torch::tensor({m.step}, torch::kInt64);
    }
  return sd;
}

void AdamW::load_state_dict(io::StateDict sd, const std::string& source) {
  std::set<std::string> names;
  for (const auto& g : groups_) names.insert(g.names.begin(), g.names.end());
  for (const auto& entry : sd) {
    const auto& key = entry.first;
    const auto dot = key.find('.');  // "exp_avg.", "exp_avg_sq." or "step." + name
    if (dot == std::string::npos || !names.count(key.substr(dot + 1)))
      fail(source, key, "optimizer state for a parameter this run does not train");
  }
  // The copy of a moment, then the source's storage dropped: one parameter's moments twice at most.
  const auto take = [&](const std::string& key, const torch::Tensor& like) {
    auto t = sd.at(key).to(like.options()).clone();
    sd.erase(key);
    return t;
  };
  for (size_t gi = 0; gi < groups_.size(); ++gi)
    for (size_t i = 0; i < groups_[gi].params.size(); ++i) {
      const auto& name = groups_[gi].names[i];
      const auto& param = groups_[gi].params[i];
      auto& m = state_[gi][i];
      const auto step = sd.find("step." + name);
      if (step == sd.end()) {  // never stepped (no gradient so far)
        m = Moments{};
        continue;
      }
      const auto avg = sd.find("exp_avg." + name), avg_sq = sd.find("exp_avg_sq." + name);
      if (avg == sd.end() || avg_sq == sd.end()) fail(source, name, "optimizer moments missing");
      if (avg->second.sizes() != param.sizes() || avg_sq->second.sizes() != param.sizes())
        fail(source, name, "optimizer moments have the wrong shape for this parameter");
      m.step = step->second.item<int64_t>();
      m.exp_avg = take("exp_avg." + name, param);
      m.exp_avg_sq = take("exp_avg_sq." + name, param);
    }
}

}  // namespace qalign::train
