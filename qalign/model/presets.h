#pragma once
// Model sizes by name, for benchmarks and tests: "tiny" (the fixture qalign-tiny), "small" (a
// scaled-down mPLUG-Owl2 with LLaMA's 32000-piece vocabulary), "owl2-7b" (the released model)
// and "owl2-7b-<N>l" (the released widths with N vision and N language layers, to time the 7B
// shapes on one device); a path ending in .json is read as a model's config.json (the demo's
// configs/demo_model.json, say).
#include <string>
#include <vector>

#include "qalign/model/config.h"

namespace qalign::model {

// An unknown name fails naming `field` and the presets there are.
ModelConfig preset_config(const std::string& name, const std::string& field = "--preset");
const std::vector<std::string>& preset_names();

}  // namespace qalign::model
