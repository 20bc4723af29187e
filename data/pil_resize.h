#pragma once
// Pillow 9.4's Image.resize(size, Image.BICUBIC) for 8-bit RGB, reproduced bit for bit: the CLIP
// processor resizes with it, and any other resampler shifts pixel values by whole levels.
#include <array>
#include <cstdint>

#include "data/image.h"

namespace qalign::data {

// A picture placed on a larger canvas of one colour (expand2square's padding), described rather
// than built: a 1x40000 picture's square would be 4.8 GB.
struct Canvas {
  int width = 0;
  int height = 0;
  int left = 0;  // the picture's top-left corner on the canvas
  int top = 0;
  std::array<uint8_t, 3> background{};
};

// Whole-image resize to out_width x out_height (Pillow's default box, no reducing_gap).
Image pil_resize_bicubic(const Image& in, int out_width, int out_height);

// The same resize of `in` drawn on `canvas`, pixel for pixel equal to resizing the built canvas.
// Memory is the picture, the output and one row; the canvas is never materialised.
Image pil_resize_bicubic(const Image& in, const Canvas& canvas, int out_width, int out_height);

}  // namespace qalign::data
