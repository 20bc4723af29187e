#include "data/video.h"

#include <chrono>
#include <cmath>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>
#include <sstream>

#include "data/preprocess.h"
#include "data/video_frame_sizes.h"
#include "qalign/base/error.h"
#include "qalign/media_type.h"

namespace qalign::data {

namespace {

Image bgr_to_image(const cv::Mat& bgr) {
  Image img(bgr.cols, bgr.rows);
  cv::Mat rgb(bgr.rows, bgr.cols, CV_8UC3, img.rgb.data());
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return img;
}

}  // namespace

int64_t header_sampled_frames(const std::string& path) {
  require_media_file(path, "video");
  cv::VideoCapture cap;
  try {
    cap.open(path, cv::CAP_FFMPEG);
  } catch (const cv::Exception& e) {
    fail(path, "", std::string("cannot open video: ") + e.what());
  }
  if (!cap.isOpened()) fail(path, "", "cannot open video with FFmpeg (corrupt, or not a video)");
  const double fps = cap.get(cv::CAP_PROP_FPS), frames = cap.get(cv::CAP_PROP_FRAME_COUNT);
  if (!std::isfinite(fps) || fps <= 0) fail(path, "fps", "video reports no usable frame rate");
  if (!std::isfinite(frames) || frames <= 0) fail(path, "frame count", "the video's header gives no frame count");
  return sampled_seconds(path, fps, frames, "by its header");
}

namespace {

// The frames' size from the header, checked against the budget before the first is decoded:
// FFmpeg's frame (YUV, up to 3 bytes a pixel), OpenCV's BGR copy and our RGB copy.
void check_frame_budget(const std::string& path, cv::VideoCapture& cap, const MediaBudget& budget) {
  const double width = cap.get(cv::CAP_PROP_FRAME_WIDTH), height = cap.get(cv::CAP_PROP_FRAME_HEIGHT);
  if (!(width > 0 && height > 0)) return;  // the container does not say: nothing to check before decoding
  std::ostringstream what;
  what << "this video's " << width << "x" << height << " frames";
  check_decoded_budget(path, what.str(), width * height * 9, budget);
}

// A sampled frame as RGB: full size, or padded and resized to `image_size` when that is > 0.
Image sampled_frame(const cv::Mat& bgr, int64_t image_size, double& resize_s) {
  Image frame = bgr_to_image(bgr);
  if (image_size <= 0) return frame;
  const auto start = std::chrono::steady_clock::now();
  Image square = square_and_resize(frame, image_size);
  resize_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return square;
}

}  // namespace

SampledVideo sample_video(const std::string& path, const MediaBudget& budget, int64_t image_size) {
  require_media_file(path, "video");
  cv::VideoCapture cap;
  try {
    cap.open(path, cv::CAP_FFMPEG);
    // decord, the reference decoder, ignores rotation metadata; so do we. Builds that cannot
    // rotate refuse the setting, which is the same outcome.
    cap.set(cv::CAP_PROP_ORIENTATION_AUTO, 0);
  } catch (const cv::Exception& e) {
    fail(path, "", std::string("cannot open video: ") + e.what());
  }
  if (!cap.isOpened()) fail(path, "", "cannot open video with FFmpeg (corrupt, or not a video)");
  SampledVideo v;
  v.fps = cap.get(cv::CAP_PROP_FPS);
  if (!std::isfinite(v.fps) || v.fps <= 0) fail(path, "fps", "video reports no usable frame rate");
  const double header_frames = cap.get(cv::CAP_PROP_FRAME_COUNT);
  if (std::isfinite(header_frames) && header_frames > 0) sampled_seconds(path, v.fps, header_frames, "by its header");
  check_frame_budget(path, cap, budget);
  require_one_frame_size(path);

  // The total is known only at the end, so keep the first frame of every second as it passes
  // and drop the incomplete last second afterwards. A frame rate below 1 repeats indices, as the
  // reference's list would.
  int64_t next = 0;  // i of the next wanted second
  int64_t index = 0;
  cv::Mat bgr;
  for (; cap.grab(); ++index) {
    // The header may understate the length; the frames seen so far bound the copies below.
    sampled_seconds(path, v.fps, static_cast<double>(index + 1), "decoded");
    if (second_start(v.fps, next) != index) continue;
    if (!cap.retrieve(bgr) || bgr.empty() || bgr.type() != CV_8UC3)
      fail(path, "frame " + std::to_string(index), "cannot decode this frame to 8-bit colour");
    const Image frame = sampled_frame(bgr, image_size, v.resize_s);
    while (second_start(v.fps, next) == index) {
      v.frames.push_back(frame);
      ++next;
    }
  }
  v.frame_count = index;
  v.indices = one_per_second_indices(v.fps, v.frame_count);
  if (v.indices.empty())
    fail(path, "",
         "video has " + std::to_string(v.frame_count) + " frames at " + std::to_string(v.fps) +
             " fps: shorter than one second, so no frame is sampled");
  v.frames.resize(v.indices.size());
  return v;
}

std::vector<Image> load_video_frames(const std::string& path) { return sample_video(path).frames; }

torch::Tensor load_video_tensor(const std::string& path, int64_t image_size, const MediaBudget& budget) {
  return normalize_frames(sample_video(path, budget, image_size).frames);
}

}  // namespace qalign::data
