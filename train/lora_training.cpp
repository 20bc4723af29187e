#include "train/lora_training.h"

#include "qalign/base/log.h"
#include "qalign/io/lora_folder.h"
#include "qalign/io/weights.h"

namespace qalign::train {

model::LoraConfig lora_config(const config::TrainConfig& c) {
  model::LoraConfig l;
  l.r = c.lora_r;
  l.alpha = static_cast<double>(c.lora_alpha);
  l.dropout = c.lora_dropout;
  l.target_modules = model::lora_targets(c.lora_target_modules, "training config");
  return l;
}

void attach_run_adapters(model::Owl2ForCausalLM& m, const config::TrainConfig& c) {
  if (c.lora_weights.empty()) {
    const auto adapted = model::attach_lora(*m, lora_config(c));
    log::info("LoRA: ", adapted.size(), " adapters, r ", c.lora_r, ", alpha ", c.lora_alpha, ", dropout ",
              c.lora_dropout);
    return;
  }
  auto f = io::read_lora_folder(c.lora_weights);
  f.config.dropout = c.lora_dropout;  // dropout is a training choice, not part of the adapter
  const auto adapted = model::attach_lora(*m, f.config);
  io::load_lora_weights(m, f, c.lora_weights);
  log::info("LoRA: ", adapted.size(), " adapters from ", c.lora_weights, " (r ", f.config.r, ", alpha ", f.config.alpha,
            "), ", f.non_lora_trainables.size(), " other tensors");
}

void write_lora_output(const std::string& dir, model::Owl2ForCausalLM m, const std::vector<std::string>& trainable,
                       const config::TrainConfig& c) {
  write_lora_output(dir, m, io::state_dict(*m), trainable, c);
}

void write_lora_output(const std::string& dir, model::Owl2ForCausalLM m, const io::StateDict& tensors,
                       const std::vector<std::string>& trainable, const config::TrainConfig& c) {
  std::vector<std::string> adapted;
  model::LoraConfig l;
  io::StateDict adapters;
  for (const auto& [name, linear] : model::lora_modules(*m)) {
    adapted.push_back(name);
    l.r = linear->lora->lora_A->weight.size(0);
    l.alpha = linear->lora->alpha;
    l.dropout = linear->lora->dropout;
    for (const char* part : {".lora_A.weight", ".lora_B.weight"}) adapters[name + part] = tensors.at(name + part);
  }
  io::StateDict extra;
  for (const auto& name : trainable)
    if (!model::is_lora_parameter(name)) extra[name] = tensors.at(name);
  io::write_lora_folder(dir, l, adapted, adapters, extra, m->config.to_json(), c.model_name_or_path);
}

}  // namespace qalign::train
