#include "qalign/model/init_weights.h"

#include "qalign/base/error.h"
#include "qalign/base/json_file.h"
#include "qalign/base/text.h"

namespace qalign::model {

namespace {

double range_at(const nlohmann::json& j, const std::string& path, const std::string& field) {
  if (!j.is_object() || !j.contains("initializer_range")) return 0.02;
  const auto& v = j["initializer_range"];
  if (!v.is_number() || v.get<double>() <= 0) fail(path, field, "must be a positive number");
  return v.get<double>();
}

}  // namespace

InitRanges init_ranges_from_config_file(const std::string& path) {
  const auto j = io::read_json_file(path);
  InitRanges r;
  r.language = range_at(j, path, "initializer_range");
  if (j.contains("visual_config") && j["visual_config"].is_object()) {
    const auto& v = j["visual_config"];
    if (v.contains("visual_model"))
      r.vision = range_at(v["visual_model"], path, "visual_config.visual_model.initializer_range");
    if (v.contains("visual_abstractor"))
      r.abstractor = range_at(v["visual_abstractor"], path, "visual_config.visual_abstractor.initializer_range");
  }
  return r;
}

void initialize_parameter(const std::string& name, torch::Tensor& p, const InitRanges& ranges, at::Generator& gen) {
  torch::NoGradGuard no_grad;
  const bool norm = name.find("norm") != std::string::npos || name.find("_ln.") != std::string::npos;
  if (ends_with(name, ".bias")) {
    p.zero_();
  } else if (norm) {
    p.fill_(1.0);
  } else {
    const double std = starts_with(name, "model.vision_model.")        ? ranges.vision
                       : starts_with(name, "model.visual_abstractor.") ? ranges.abstractor
                                                                       : ranges.language;
    p.normal_(0.0, std, gen);
  }
}

void initialize_weights(Owl2ForCausalLMImpl& m, const InitRanges& ranges, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (auto& item : m.named_parameters()) initialize_parameter(item.key(), item.value(), ranges, gen);
}

}  // namespace qalign::model
