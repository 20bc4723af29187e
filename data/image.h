#pragma once
// A decoded picture as the reference sees it after PIL's .convert('RGB'): 8-bit RGB, rows top to
// bottom, pixels interleaved. Kept free of OpenCV so code outside qalign_data can use it.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace qalign::data {

struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;  // height * width * 3 bytes, HWC

  Image() = default;
  Image(int w, int h) : width(w), height(h), rgb(static_cast<size_t>(w) * static_cast<size_t>(h) * 3) {}

  uint8_t* pixel(int x, int y) { return rgb.data() + (static_cast<size_t>(y) * width + x) * 3; }
  const uint8_t* pixel(int x, int y) const { return rgb.data() + (static_cast<size_t>(y) * width + x) * 3; }
};

}  // namespace qalign::data
