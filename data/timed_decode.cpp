#include "data/timed_decode.h"

#include <chrono>
#include <vector>

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

scoring::DecodedInput timed_decode(const std::string& path, int64_t image_size) {
  scoring::DecodedInput d;
  d.media = is_video_path(path) ? Media::kVideo : Media::kImage;
  auto t = std::chrono::steady_clock::now();
  if (d.media == Media::kVideo) {
    const auto frames = load_video_frames(path);
    d.decode_s = seconds_since(t);
    t = std::chrono::steady_clock::now();
    std::vector<torch::Tensor> pixels;
    for (const auto& f : frames) pixels.push_back(preprocess_image(f, image_size));
    d.pixels = torch::stack(pixels);
  } else {
    const auto image = decode_image(path);
    d.decode_s = seconds_since(t);
    t = std::chrono::steady_clock::now();
    d.pixels = preprocess_image(image, image_size).unsqueeze(0);
  }
  d.preprocess_s = seconds_since(t);
  return d;
}

torch::Tensor load_pixels(const std::string& path, Media media, int64_t image_size) {
  return media == Media::kVideo ? load_video_tensor(path, image_size)
                                : load_image_tensor(path, image_size).unsqueeze(0);
}

}  // namespace qalign::data
