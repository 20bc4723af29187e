#pragma once
// Pillow 9.4's Image.resize(size, Image.BICUBIC) for 8-bit RGB, reproduced bit for bit: the CLIP
// processor resizes with it, and any other resampler shifts pixel values by whole levels.
#include "data/image.h"

namespace qalign::data {

// Whole-image resize to out_width x out_height (Pillow's default box, no reducing_gap).
Image pil_resize_bicubic(const Image& in, int out_width, int out_height);

}  // namespace qalign::data
