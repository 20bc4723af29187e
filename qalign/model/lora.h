#pragma once
// Low-rank adapters (LoRA, PEFT 0.4.0's LoraLayer as the authors use it, SPEC.md §7): an adapted
// Linear computes  y = x Wᵀ + B(A(dropout(x))) · alpha/r  with A [r,in], B [out,r]. The adapter's
// two matrices are registered on the Linear itself as `lora_A` and `lora_B`, so their parameter
// names are PEFT's saved names without the `base_model.model.` prefix, e.g.
// `model.layers.0.self_attn.q_proj.lora_A.weight`.
#include <torch/torch.h>

#include <string>
#include <vector>

#include "qalign/model/layers.h"

namespace qalign::model {

struct LoraConfig {
  int64_t r = 128;
  double alpha = 256;
  double dropout = 0.05;
  // Module-name suffixes (PEFT matches a module whose name ends with one); default the authors'
  // find_all_linear_names: every q_proj and the visual branch of v_proj.
  std::vector<std::string> target_modules = {"q_proj", "v_proj.multiway.1"};
  double scaling() const { return alpha / static_cast<double>(r); }
};

// Config spellings -> module-name suffixes: q, k, v, o, gate, up, down name the LLM's projections
// (k and v: both modality branches); anything else is taken as a suffix itself (e.g.
// "v_proj.multiway.1"). An empty list gives the authors' default.
std::vector<std::string> lora_targets(const std::vector<std::string>& spelled, const std::string& source);

struct LoraAdapter {
  Linear lora_A{nullptr}, lora_B{nullptr};
  double alpha = 1, scaling = 1, dropout = 0;  // scaling = alpha / r
  // When defined, the dropout mask (1 = kept, any shape with the input's elements) used instead
  // of a random draw: parity tests replay the reference's masks through it.
  torch::Tensor replay_mask;
  // B(A(dropout(x))) · scaling
  torch::Tensor delta(const torch::Tensor& x, bool training);
};

// Attaches a fresh adapter (A kaiming-uniform as PEFT draws it, B zero) to every decoder-layer
// Linear whose name matches a target; returns the adapted module names in model order. No match
// is an error: a misspelled target must not train nothing.
std::vector<std::string> attach_lora(torch::nn::Module& m, const LoraConfig& c);

// The adapted Linears by full module name, in model order.
std::vector<std::pair<std::string, LinearImpl*>> lora_modules(torch::nn::Module& m);

bool is_lora_parameter(const std::string& name);

// Folds every adapter into its base weight (W += (B @ A) · scaling, PEFT's merge_and_unload) and
// removes the adapters, leaving a plain model with the checkpoint's parameter names.
void merge_lora(torch::nn::Module& m);

}  // namespace qalign::model
