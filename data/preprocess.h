#pragma once
// Q-Align's image pre-processing (SPEC §4.1): expand2square on the CLIP-mean colour, then
// CLIPImageProcessor (shortest edge -> image_size with PIL bicubic, center crop, rescale,
// normalise), all in the reference's arithmetic so pixel values match to the last bit.
#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "data/image.h"
#include "qalign/media_budget.h"
#include "qalign/preprocessor_config.h"

namespace qalign::data {

// Pads the shorter side to a square, the picture centred with floor((long - short) / 2) above or
// to the left of it. Square images come back unchanged.
Image expand2square(const Image& img, const std::array<uint8_t, 3>& background = kPadColor);

// Resize so the shortest edge is `size` (PIL bicubic; the long edge truncated as transformers
// does), then center crop size x size.
Image resize_and_crop(const Image& img, int64_t size);

// uint8 HWC -> float32 [3, H, W]: x = float32(u8 * (1/255) in double), then (x - mean) / std in
// float32, exactly as the processor's rescale and normalize.
torch::Tensor normalize_clip(const Image& img);

// normalize_clip of each frame (all the same size) into one [F, 3, H, W] tensor, written in place
// rather than stacked, so a video's pixels are held once.
torch::Tensor normalize_frames(const std::vector<Image>& frames);

// resize_and_crop(expand2square(img), size), pixel for pixel, without building the square: the
// padding enters the resize as a constant, so a 1x40000 picture costs no more than its own pixels.
Image square_and_resize(const Image& img, int64_t size, const std::array<uint8_t, 3>& background = kPadColor);

// square_and_resize + normalize_clip: the model's [3, S, S] pixel_values.
torch::Tensor preprocess_image(const Image& img, int64_t image_size);

// decode_image + preprocess_image.
torch::Tensor load_image_tensor(const std::string& path, int64_t image_size, const MediaBudget& budget = {});

}  // namespace qalign::data
