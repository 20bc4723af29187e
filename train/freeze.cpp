#include "train/freeze.h"

#include "qalign/base/error.h"
#include "qalign/base/text.h"
#include "qalign/model/lora.h"

namespace qalign::train {

std::vector<std::pair<std::string, torch::Tensor>> apply_freezing(model::Owl2ForCausalLM& m,
                                                                  const config::TrainConfig& c) {
  std::vector<std::pair<std::string, torch::Tensor>> trainable;
  for (auto& p : m->named_parameters()) {
    const auto& name = p.key();
    bool on = true;
    // With LoRA the authors train the adapters and, with tune_visual_abstractor, the abstractor;
    // the vision tower stays frozen whatever freeze_vision_model says.
    // A regression head is new weights on every setting.
    if (starts_with(name, "score_head."))
      on = true;
    else if (c.lora_enable)
      on =
          model::is_lora_parameter(name) || (c.tune_visual_abstractor && starts_with(name, "model.visual_abstractor."));
    else if (starts_with(name, "model.vision_model."))
      on = !c.freeze_vision_model;
    else if (starts_with(name, "model.visual_abstractor."))
      on = c.tune_visual_abstractor;
    else
      on = c.tune_language_model;
    p.value().set_requires_grad(on);
    if (on) trainable.emplace_back(name, p.value());
  }
  if (trainable.empty())
    fail("training config", "tune_language_model",
         "nothing to train: the vision model, the abstractor and the language model are all frozen");
  return trainable;
}

std::set<std::string> no_weight_decay(model::Owl2ForCausalLM& m) {
  std::set<std::string> names;
  for (const auto& item : m->named_modules()) {
    const bool layer_norm = dynamic_cast<model::LayerNormImpl*>(item.value().get()) != nullptr;
    const std::string prefix = item.key().empty() ? "" : item.key() + ".";
    for (const auto& p : item.value()->named_parameters(false)) {
      const std::string name = prefix + p.key();
      if (layer_norm || name.find("bias") != std::string::npos) names.insert(name);
    }
  }
  return names;
}

}  // namespace qalign::train
