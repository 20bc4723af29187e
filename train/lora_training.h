#pragma once
// LoRA runs (lora_enable, SPEC.md §7): adapters on a frozen base (freeze.h decides what trains),
// saved as a LoRA folder (io/lora_folder.h) in place of the full model, as the authors'
// train_mem.py saves its LoRA runs. Checkpoints hold the same folder plus the trainer's state.
#include <string>
#include <vector>

#include "qalign/config/train_config.h"
#include "qalign/io/state_dict.h"
#include "qalign/model/lora.h"
#include "qalign/model/owl2.h"

namespace qalign::train {

// The run's adapter settings from lora_r, lora_alpha, lora_dropout and lora_target_modules.
model::LoraConfig lora_config(const config::TrainConfig& c);

// Attaches the run's adapters to `m`: fresh ones, or lora_weights' (its own r, alpha, targets).
void attach_run_adapters(model::Owl2ForCausalLM& m, const config::TrainConfig& c);

// Writes the LoRA folder of `m` into `dir`: the adapters, the other `trainable` tensors (the
// abstractor when tune_visual_abstractor) and config.json; base_model_name_or_path names the base.
void write_lora_output(const std::string& dir, model::Owl2ForCausalLM m, const std::vector<std::string>& trainable,
                       const config::TrainConfig& c);
// The same with the adapters' and the other trainable tensors' values from `tensors` (by
// parameter name) in place of the model's (ZeRO-3 gathers them unit by unit).
void write_lora_output(const std::string& dir, model::Owl2ForCausalLM m, const io::StateDict& tensors,
                       const std::vector<std::string>& trainable, const config::TrainConfig& c);

}  // namespace qalign::train
