#pragma once
// What CLIPImageProcessor is set to for Q-Align (SPEC §4.1): its constants, and the model
// folder's preprocessor_config.json checked against them. No pixels here: data/preprocess.h
// applies them; the scorer, the evaluation and the trainer's checkpoints read only this.
#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <string>

namespace qalign {

inline constexpr std::array<double, 3> kClipMean = {0.48145466, 0.4578275, 0.40821073};
inline constexpr std::array<double, 3> kClipStd = {0.26862954, 0.26130258, 0.27577711};
// tuple(int(m * 255) for m in image_mean): truncated, giving (122, 116, 104).
inline constexpr std::array<uint8_t, 3> kPadColor = {static_cast<uint8_t>(kClipMean[0] * 255),
                                                     static_cast<uint8_t>(kClipMean[1] * 255),
                                                     static_cast<uint8_t>(kClipMean[2] * 255)};

// The model folder's preprocessor_config.json, when it has one, against what preprocess_image
// does: CLIP's mean and std, bicubic resizing and cropping to `image_size`. Any other value would
// give other pixels than the model was trained on, so it is an error naming the key.
void check_preprocessor_config(const std::string& model_dir, int64_t image_size);

// The CLIPImageProcessor settings preprocess_image implements, for a model of `image_size`.
nlohmann::json clip_preprocessor_config(int64_t image_size);

}  // namespace qalign
