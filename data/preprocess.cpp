#include "data/preprocess.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "data/image_decode.h"
#include "data/pil_resize.h"
#include "qalign/base/error.h"

namespace qalign::data {

Image expand2square(const Image& img, const std::array<uint8_t, 3>& background) {
  if (img.width == img.height) return img;
  const int side = std::max(img.width, img.height);
  Image square(side, side);
  for (size_t i = 0; i < square.rgb.size(); i += 3)
    std::copy(background.begin(), background.end(), square.rgb.begin() + i);
  const int left = (side - img.width) / 2;
  const int top = (side - img.height) / 2;
  const size_t row_bytes = static_cast<size_t>(img.width) * 3;
  for (int y = 0; y < img.height; ++y) std::memcpy(square.pixel(left, top + y), img.pixel(0, y), row_bytes);
  return square;
}

Image resize_and_crop(const Image& img, int64_t size) {
  if (size <= 0) throw std::invalid_argument("resize_and_crop: size must be positive");
  if (img.width <= 0 || img.height <= 0) throw std::invalid_argument("resize_and_crop: empty image");
  // transformers' get_resize_output_image_size(default_to_square=False).
  const int64_t short_edge = std::min(img.width, img.height);
  const int64_t long_edge = std::max(img.width, img.height);
  const auto scaled_long = static_cast<int64_t>(static_cast<double>(size * long_edge) / short_edge);
  const bool wide = img.width > img.height;
  const int width = static_cast<int>(wide ? scaled_long : size);
  const int height = static_cast<int>(wide ? size : scaled_long);
  Image resized = pil_resize_bicubic(img, width, height);
  if (width == size && height == size) return resized;
  Image crop(static_cast<int>(size), static_cast<int>(size));
  const int left = static_cast<int>((width - size) / 2);
  const int top = static_cast<int>((height - size) / 2);
  for (int y = 0; y < crop.height; ++y)
    std::memcpy(crop.pixel(0, y), resized.pixel(left, top + y), static_cast<size_t>(crop.width) * 3);
  return crop;
}

namespace {

// x = float32(u8 * (1/255) in double), then (x - mean) / std in float32, for each of 256 values.
struct ClipTable {
  float value[3][256];
  ClipTable() {
    for (int c = 0; c < 3; ++c) {
      const float mean = static_cast<float>(kClipMean[c]);
      const float sd = static_cast<float>(kClipStd[c]);
      for (int v = 0; v < 256; ++v) {
        const float x = static_cast<float>(static_cast<double>(v) * (1.0 / 255.0));
        value[c][v] = (x - mean) / sd;
      }
    }
  }
};

// HWC uint8 -> CHW float32 at `dst`.
void normalize_into(const Image& img, float* dst) {
  // Only 256 inputs per channel: tabulate the exact reference arithmetic once.
  static const ClipTable table;
  const int64_t plane = static_cast<int64_t>(img.width) * img.height;
  const uint8_t* src = img.rgb.data();
  for (int64_t i = 0; i < plane; ++i)
    for (int c = 0; c < 3; ++c) dst[c * plane + i] = table.value[c][src[i * 3 + c]];
}

}  // namespace

torch::Tensor normalize_clip(const Image& img) {
  torch::Tensor out = torch::empty({3, img.height, img.width}, torch::kFloat32);
  normalize_into(img, out.data_ptr<float>());
  return out;
}

torch::Tensor normalize_frames(const std::vector<Image>& frames) {
  if (frames.empty()) throw std::invalid_argument("normalize_frames: no frames");
  const int64_t f = static_cast<int64_t>(frames.size()), h = frames[0].height, w = frames[0].width;
  torch::Tensor out = torch::empty({f, 3, h, w}, torch::kFloat32);
  for (int64_t i = 0; i < f; ++i) {
    if (frames[i].width != w || frames[i].height != h)
      throw std::invalid_argument("normalize_frames: frames of different sizes");
    normalize_into(frames[i], out.data_ptr<float>() + i * 3 * h * w);
  }
  return out;
}

Image square_and_resize(const Image& img, int64_t size, const std::array<uint8_t, 3>& background) {
  if (size <= 0) throw std::invalid_argument("square_and_resize: size must be positive");
  if (img.width <= 0 || img.height <= 0) throw std::invalid_argument("square_and_resize: empty image");
  // A square's shortest edge is its side, so resize_and_crop resizes it to size x size, no crop.
  const int side = std::max(img.width, img.height);
  const Canvas canvas{side, side, (side - img.width) / 2, (side - img.height) / 2, background};
  return pil_resize_bicubic(img, canvas, static_cast<int>(size), static_cast<int>(size));
}

torch::Tensor preprocess_image(const Image& img, int64_t image_size) {
  return normalize_clip(square_and_resize(img, image_size));
}

torch::Tensor load_image_tensor(const std::string& path, int64_t image_size, const MediaBudget& budget) {
  return preprocess_image(decode_image(path, budget), image_size);
}

}  // namespace qalign::data
