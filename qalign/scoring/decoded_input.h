#pragma once
// One input read into model pixels, and the readers the scoring jobs take as arguments: decoding
// (OpenCV) lives in data/, above this layer, so the command hands its decoders down.
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>

#include "qalign/prompts.h"

namespace qalign::scoring {

struct DecodedInput {
  Media media = Media::kImage;
  torch::Tensor pixels;                   // [F,3,S,S]: F = 1 for a picture, the sampled frames for a video
  double decode_s = 0, preprocess_s = 0;  // timed apart, to tell slow storage or codecs from slow resizing
};

// A file read into model pixels of `image_size`, the media type judged from the file
// (data::timed_decode). Throws on a file that cannot be read: the job makes it a failed row.
using Decoder = std::function<DecodedInput(const std::string& path, int64_t image_size)>;

// A file read as `media` into [F,3,S,S] pixels (data::load_pixels): the label files say which
// records are videos. Throws qalign::Error naming a file that cannot be read.
using PixelLoader = std::function<torch::Tensor(const std::string& path, Media media, int64_t image_size)>;

}  // namespace qalign::scoring
