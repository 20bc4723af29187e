#pragma once
// One input of `qalign score` read into model pixels, timed by stage: the job's summary reports
// decode and preprocess seconds apart, to tell slow storage or codecs from slow resizing.
#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "qalign/prompts.h"

namespace qalign::data {

struct DecodedInput {
  Media media = Media::kImage;
  torch::Tensor pixels;  // [F,3,S,S]: F = 1 for a picture, the sampled frames for a video
  double decode_s = 0, preprocess_s = 0;
};

// A video (is_video_path) has its frames sampled, a picture is decoded; each is then pre-processed
// to `image_size`. Throws on a file that cannot be read: qalign::Error naming it, or the
// decoder's or allocator's std::exception, which may not.
DecodedInput timed_decode(const std::string& path, int64_t image_size);

}  // namespace qalign::data
