#include "qalign/model/lora.h"

#include <cmath>
#include <map>

#include "qalign/base/error.h"
#include "qalign/base/text.h"

namespace qalign::model {

namespace {

// PEFT tests key.endswith(target); requiring a dot before the suffix keeps "q_proj" from
// matching some "xq_proj" while agreeing on every name this model has.
bool matches(const std::string& name, const std::vector<std::string>& targets) {
  for (const auto& t : targets)
    if (name == t || ends_with(name, "." + t)) return true;
  return false;
}

}  // namespace

std::vector<std::string> lora_targets(const std::vector<std::string>& spelled, const std::string& source) {
  static const std::map<std::string, std::vector<std::string>> short_names = {
      {"q", {"q_proj"}},
      {"k", {"k_proj.multiway.0", "k_proj.multiway.1"}},
      {"v", {"v_proj.multiway.0", "v_proj.multiway.1"}},
      {"o", {"o_proj"}},
      {"gate", {"gate_proj"}},
      {"up", {"up_proj"}},
      {"down", {"down_proj"}}};
  if (spelled.empty()) return LoraConfig{}.target_modules;
  std::vector<std::string> out;
  for (const auto& s : spelled) {
    if (s.empty()) fail(source, "lora_target_modules", "empty target name");
    const auto it = short_names.find(s);
    if (it != short_names.end())
      out.insert(out.end(), it->second.begin(), it->second.end());
    else
      out.push_back(s);
  }
  return out;
}

torch::Tensor LoraAdapter::delta(const torch::Tensor& x, bool training) {
  torch::Tensor dropped = x;
  if (training && dropout > 0) {
    // torch's dropout: x · (mask / (1 - p)), the division done on the mask in x's dtype.
    dropped = replay_mask.defined() ? x * replay_mask.reshape(x.sizes()).to(x.scalar_type()).div(1.0 - dropout)
                                    : torch::dropout(x, dropout, /*train=*/true);
  }
  return lora_B(lora_A(dropped)) * scaling;
}

std::vector<std::string> attach_lora(torch::nn::Module& m, const LoraConfig& c) {
  std::vector<std::string> adapted;
  for (const auto& item : m.named_modules()) {
    const auto& name = item.key();
    auto* linear = dynamic_cast<LinearImpl*>(item.value().get());
    if (!linear || name.rfind("model.layers.", 0) != 0 || !matches(name, c.target_modules)) continue;
    if (linear->lora) fail(name, "lora", "already has an adapter");
    const auto opts = linear->weight.options();
    auto a = std::make_shared<LoraAdapter>();
    a->lora_A = Linear(linear->weight.size(1), c.r, false, opts);
    a->lora_B = Linear(c.r, linear->weight.size(0), false, opts);
    {
      torch::NoGradGuard no_grad;
      if (opts.device().type() != torch::kMeta) {
        torch::nn::init::kaiming_uniform_(a->lora_A->weight, std::sqrt(5.0));
        a->lora_B->weight.zero_();
      }
    }
    a->alpha = c.alpha;
    a->scaling = c.scaling();
    a->dropout = c.dropout;
    linear->register_module("lora_A", a->lora_A);
    linear->register_module("lora_B", a->lora_B);
    linear->lora = a;
    if (!linear->is_training()) {
      a->lora_A->eval();
      a->lora_B->eval();
    }
    adapted.push_back(name);
  }
  if (adapted.empty()) {
    std::string list;
    for (const auto& t : c.target_modules) list += (list.empty() ? "" : ", ") + t;
    fail("lora_target_modules", list, "matches no Linear of the language model");
  }
  return adapted;
}

std::vector<std::pair<std::string, LinearImpl*>> lora_modules(torch::nn::Module& m) {
  std::vector<std::pair<std::string, LinearImpl*>> out;
  for (const auto& item : m.named_modules()) {
    auto* linear = dynamic_cast<LinearImpl*>(item.value().get());
    if (linear && linear->lora) out.emplace_back(item.key(), linear);
  }
  return out;
}

bool is_lora_parameter(const std::string& name) {
  return name.find(".lora_A.") != std::string::npos || name.find(".lora_B.") != std::string::npos;
}

void merge_lora(torch::nn::Module& m) {
  torch::NoGradGuard no_grad;
  for (auto& [name, linear] : lora_modules(m)) {
    const auto& a = *linear->lora;
    linear->weight.add_(torch::matmul(a.lora_B->weight, a.lora_A->weight) * a.scaling);
    linear->unregister_module("lora_A");
    linear->unregister_module("lora_B");
    linear->lora = nullptr;
  }
}

}  // namespace qalign::model
