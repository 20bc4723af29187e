#pragma once
// Which parameters train, from the recipe's flags (SPEC.md §7): the authors set every parameter
// trainable, then freeze the ViT with freeze_vision_model. tune_visual_abstractor: false freezes
// the abstractor (in the authors' full fine-tuning path the flag can only add, and every script
// passes true); tune_language_model: false freezes the LLM (embeddings, layers, norm, lm_head).
// With lora_enable only the adapters (model/lora.h) and, with tune_visual_abstractor, the
// abstractor train.
#include <torch/torch.h>

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "qalign/config/train_config.h"
#include "qalign/model/owl2.h"

namespace qalign::train {

// Sets requires_grad on every parameter and returns the trainable ones by name, in the model's
// parameter order. No trainable parameter left is an error.
std::vector<std::pair<std::string, torch::Tensor>> apply_freezing(model::Owl2ForCausalLM& m,
                                                                  const config::TrainConfig& c);

// Names of the parameters without weight decay, HF's rule (the complement of
// get_parameter_names(model, [nn.LayerNorm]) minus names containing "bias"): biases and
// LayerNorm parameters. The LLM's RMSNorm weights do decay, as in the authors' code.
std::set<std::string> no_weight_decay(model::Owl2ForCausalLM& m);

}  // namespace qalign::train
