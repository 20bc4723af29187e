#include "train/zero3_units.h"

#include "qalign/base/text.h"

namespace qalign::train {

std::string zero3_unit(const std::string& name) {
  const auto upto = [&](const std::string& prefix) { return name.substr(0, name.find('.', prefix.size())); };
  if (starts_with(name, "model.vision_model.encoder.layers.")) return upto("model.vision_model.encoder.layers.");
  if (starts_with(name, "model.layers.")) return upto("model.layers.");
  if (starts_with(name, "model.vision_model.")) return upto("model.vision_model.");
  if (starts_with(name, "model.")) return upto("model.");
  return upto("");
}

}  // namespace qalign::train
