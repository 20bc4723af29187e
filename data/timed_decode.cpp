#include "data/timed_decode.h"

#include <chrono>

#include "data/image_decode.h"
#include "data/preprocess.h"
#include "data/video.h"
#include "qalign/media_type.h"

namespace qalign::data {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

scoring::DecodedInput timed_decode(const std::string& path, int64_t image_size, const MediaBudget& budget) {
  scoring::DecodedInput d;
  d.media = is_video_path(path) ? Media::kVideo : Media::kImage;
  auto t = std::chrono::steady_clock::now();
  if (d.media == Media::kVideo) {
    const SampledVideo v = sample_video(path, budget, image_size);
    d.decode_s = seconds_since(t) - v.resize_s;
    t = std::chrono::steady_clock::now();
    d.pixels = normalize_frames(v.frames);
    d.preprocess_s = v.resize_s + seconds_since(t);
  } else {
    const auto image = decode_image(path, budget);
    d.decode_s = seconds_since(t);
    t = std::chrono::steady_clock::now();
    d.pixels = preprocess_image(image, image_size).unsqueeze(0);
    d.preprocess_s = seconds_since(t);
  }
  return d;
}

torch::Tensor load_pixels(const std::string& path, Media media, int64_t image_size, const MediaBudget& budget) {
  return media == Media::kVideo ? load_video_tensor(path, image_size, budget)
                                : load_image_tensor(path, image_size, budget).unsqueeze(0);
}

scoring::Decoder budgeted_decoder(const MediaBudget& budget) {
  return [budget](const std::string& path, int64_t image_size) { return timed_decode(path, image_size, budget); };
}

scoring::PixelLoader budgeted_pixel_loader(const MediaBudget& budget) {
  return [budget](const std::string& path, Media media, int64_t image_size) {
    return load_pixels(path, media, image_size, budget);
  };
}

}  // namespace qalign::data
