#pragma once
// The weights' memory per scoring mode (model::weight_bytes_per_mode), as inspect and plan print it.
#include <nlohmann/json.hpp>
#include <string>

#include "qalign/model/config.h"

namespace qalign::tools {

// One line per mode: name, size, the options that score in it.
std::string mode_weights_text(const model::ModelConfig& c);

// [{"mode", "flags", "bytes", "mapped_bytes"}, ...] (model::ModeWeights)
nlohmann::json mode_weights_json(const model::ModelConfig& c);

}  // namespace qalign::tools
