#pragma once
// ZeRO-3's units (train/zero3.h), defined once for the trainer and the plan (train/plan.h): each
// ViT encoder layer and each LLaMA decoder layer, and the vision embeddings, the vision tower's
// final norm, the visual abstractor, embed_tokens, the final norm, lm_head and score_head.
#include <string>

namespace qalign::train {

// The unit a parameter (or buffer) belongs to, by its full name: the name of the unit's module,
// i.e. the name up to its layer index, else up to that part's name ("model.layers.3",
// "model.vision_model.embeddings", "lm_head").
std::string zero3_unit(const std::string& name);

}  // namespace qalign::train
