#include "qalign/preprocessor_config.h"

#include <cmath>
#include <filesystem>

#include "qalign/base/error.h"
#include "qalign/base/json_file.h"

namespace qalign {

void check_preprocessor_config(const std::string& model_dir, int64_t image_size) {
  const auto path = (std::filesystem::path(model_dir) / "preprocessor_config.json").string();
  if (!std::filesystem::exists(path)) return;
  const auto j = io::read_json_file(path);
  const auto triple = [&](const char* key, const std::array<double, 3>& want) {
    if (!j.contains(key)) return;
    const auto& v = j[key];
    bool same = v.is_array() && v.size() == 3;
    for (size_t i = 0; same && i < 3; ++i) same = v[i].is_number() && std::abs(v[i].get<double>() - want[i]) < 1e-6;
    if (!same)
      fail(path, key,
           "only CLIP's values are supported (the model's pixels are normalised with them), got " + v.dump());
  };
  triple("image_mean", kClipMean);
  triple("image_std", kClipStd);
  // crop_size and size: a number, or {"height", "width"} / {"shortest_edge"} as newer processors write them.
  for (const char* key : {"crop_size", "size"}) {
    if (!j.contains(key)) continue;
    const auto& v = j[key];
    bool same = v.is_number_integer() && v.get<int64_t>() == image_size;
    if (v.is_object()) {
      same = !v.empty();
      for (const auto& [k, side] : v.items())
        same = same && side.is_number_integer() && side.get<int64_t>() == image_size;
    }
    if (!same)
      fail(path, key, "must be the vision tower's image_size " + std::to_string(image_size) + ", got " + v.dump());
  }
  if (j.contains("resample") && j["resample"] != 3)
    fail(path, "resample", "only 3 (bicubic) is supported, got " + j["resample"].dump());
  for (const char* key : {"do_resize", "do_center_crop", "do_normalize"})
    if (j.contains(key) && j[key] != true) fail(path, key, "only true is supported, got " + j[key].dump());
}

nlohmann::json clip_preprocessor_config(int64_t image_size) {
  return {{"crop_size", image_size},
          {"do_center_crop", true},
          {"do_normalize", true},
          {"do_resize", true},
          {"feature_extractor_type", "CLIPFeatureExtractor"},
          {"image_mean", kClipMean},
          {"image_std", kClipStd},
          {"resample", 3},
          {"size", image_size}};
}

}  // namespace qalign
