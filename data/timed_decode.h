#pragma once
// One input of `qalign score` or `qalign eval` read into model pixels (the decoders the scoring
// jobs in qalign/scoring/ take as arguments).
#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "qalign/media_budget.h"
#include "qalign/prompts.h"
#include "qalign/scoring/decoded_input.h"

namespace qalign::data {

// A video (is_video_path) has its frames sampled, each padded and resized as it is decoded, a
// picture is decoded within `budget`; each is then pre-processed to `image_size`, timed by stage
// (a video's resizing counted as pre-processing). Throws on a file that cannot be read:
// qalign::Error naming it, or the decoder's or allocator's std::exception, which may not.
scoring::DecodedInput timed_decode(const std::string& path, int64_t image_size, const MediaBudget& budget = {});

// `path` read as `media` (a video's frames sampled at 1 fps) into [F,3,S,S] pixels.
torch::Tensor load_pixels(const std::string& path, Media media, int64_t image_size, const MediaBudget& budget = {});

// The two readers with `budget` bound, as the scoring jobs take them.
scoring::Decoder budgeted_decoder(const MediaBudget& budget);
scoring::PixelLoader budgeted_pixel_loader(const MediaBudget& budget);

}  // namespace qalign::data
