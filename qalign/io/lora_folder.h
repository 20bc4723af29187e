#pragma once
// LoRA folders as the authors' train_mem.py writes them (lora_enable) and builder.py reads them:
//   adapter_config.json       PEFT's LoraConfig (r, lora_alpha, lora_dropout, target_modules)
//   adapter_model.safetensors PEFT's adapter weights, `base_model.model.<module>.lora_{A,B}.weight`
//     (or adapter_model.bin, as PEFT 0.4.0 under the authors' code saves it)
//   non_lora_trainables.bin   the other trained parameters (the abstractor), `base_model.model.<name>`
//   config.json               the model config
// Names in memory are the model's: `model.layers.0.self_attn.q_proj.lora_A.weight`,
// `model.visual_abstractor.query_embeds`.
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "qalign/io/state_dict.h"
#include "qalign/io/weight_reader.h"
#include "qalign/model/lora.h"
#include "qalign/model/owl2.h"
#include "qalign/model/quantize.h"

namespace qalign::io {

struct LoraFolder {
  model::LoraConfig config;       // target_modules as the file lists them
  StateDict adapters;             // lora_A / lora_B weights by model parameter name
  StateDict non_lora_trainables;  // by model parameter name (builder.py's renaming applied)
  std::string base_model;         // adapter_config.json's base_model_name_or_path
};

LoraFolder read_lora_folder(const std::string& dir);

// Writes the folder in PEFT's layout (adapter_model.safetensors) plus non_lora_trainables.bin and
// config.json, so both PEFT and the authors' builder.py load it. `adapted_modules` become
// target_modules (full names, as find_all_linear_names gives them).
void write_lora_folder(const std::string& dir, const model::LoraConfig& config,
                       const std::vector<std::string>& adapted_modules, const StateDict& adapters,
                       const StateDict& non_lora_trainables, const nlohmann::json& model_config,
                       const std::string& base_model);

// The adapter weights of `m` (every lora_A / lora_B) by model parameter name.
StateDict lora_state_dict(torch::nn::Module& m);

// Attaches the folder's adapters to `m` and loads every tensor of the folder into it. Unlike
// PEFT's and builder.py's strict=False loads, a tensor that names no parameter, or an adapted
// module without its weights, is an error.
LoraFolder apply_lora_folder(model::Owl2ForCausalLM& m, const std::string& dir);

// Copies the folder's tensors into `m`, whose adapters are already attached (a resumed run);
// parameters built without storage (model::NoStorageGuard) are only checked.
void load_lora_weights(model::Owl2ForCausalLM& m, const LoraFolder& f, const std::string& dir);

// A model folder's weights with a LoRA folder merged (as builder.py serves it), one tensor at a
// time in float32: W + B·A·alpha/r for each adapted weight, the folder's other trainables where it
// holds them, else the base's. Both folders are checked first, as loading them into a model would
// check them, on a model built on the meta device; then memory holds one tensor at a time, so a
// model larger than memory in float32 can be merged and written (qalign export) or loaded in bf16.
class MergedWeights {
 public:
  MergedWeights(const std::string& model_dir, const std::string& lora_dir);  // lora_dir may be ""
  const model::ModelConfig& config() const { return config_; }
  // The model's tensors (parameters and persistent buffers) with their shapes, in file order.
  const std::vector<std::pair<std::string, std::vector<int64_t>>>& tensors() const { return tensors_; }
  torch::Tensor float32(const std::string& name) const;

 private:
  model::ModelConfig config_;
  WeightReader base_;
  LoraFolder lora_;
  std::vector<std::pair<std::string, std::vector<int64_t>>> tensors_;
};

// A model folder with a LoRA folder applied and merged (MergedWeights), cast to `dtype` on
// `device` tensor by tensor, the linears `quantize` names quantised as each merged weight is made
// (io::LoadTarget). Without `lora_dir`, io::load_pretrained.
model::Owl2ForCausalLM load_pretrained_with_lora(const std::string& model_dir, const std::string& lora_dir,
                                                 torch::Dtype dtype = torch::kFloat32,
                                                 torch::Device device = torch::kCPU,
                                                 const model::QuantizeOptions& quantize = {});

}  // namespace qalign::io
