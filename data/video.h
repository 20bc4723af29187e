#pragma once
// Q-Align's video input (SPEC §4.2): one frame per second by the authors' load_video rule,
// decoded with FFmpeg (through OpenCV) like decord, each frame then pre-processed as a photo.
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "data/image.h"
#include "qalign/media_budget.h"

namespace qalign::data {

// Python's int(fps * i): the frame where second i starts.
int64_t second_start(double fps, int64_t i);
// [int(fps * i) for i in range(int(frame_count / fps))]: the first frame of each whole second.
std::vector<int64_t> one_per_second_indices(double fps, int64_t frame_count);

// The longest video scored, in sampled seconds. Every sampled frame is held in memory, so the
// duration is checked (from the header before decoding, then as frames pass) before frames pile up.
inline constexpr int64_t kMaxVideoSeconds = 600;

// int(frame_count / fps), the number of frames the reference samples. Throws qalign::Error naming
// `path` when it is over kMaxVideoSeconds; `counted` says where frame_count came from.
int64_t sampled_seconds(const std::string& path, double fps, double frame_count, const std::string& counted);

// The frames sample_video keeps, from the container's header alone (frame rate and count), without
// decoding: what a plan counts a video sample as. Throws qalign::Error naming `path` when the file
// cannot be opened or its header gives no frame rate or count.
int64_t header_sampled_frames(const std::string& path);

struct SampledVideo {
  double fps = 0;           // the container's average frame rate
  int64_t frame_count = 0;  // frames actually decoded
  std::vector<int64_t> indices;
  std::vector<Image> frames;  // RGB, one per index: full size, or image_size square when asked
  double resize_s = 0;        // of the decoding time, the seconds spent resizing frames
};

// Decodes every frame in order (seeking is not frame-exact in every container) and keeps the
// sampled ones. With `image_size` > 0 each sampled frame is padded and resized to that square
// (square_and_resize, the first half of preprocess_image, so the pixels are the same) as it is
// decoded, so memory is bounded by frames x image_size^2 x 3 rather than by the video's size.
// Throws qalign::Error naming the file when it is not a regular file, cannot be opened, its
// frames are over `budget`'s decoded bytes, its frames change size (naming the frame; read from
// the packets before decoding, video_frame_sizes.h), it is shorter than one second (no frame
// sampled) or longer than kMaxVideoSeconds.
SampledVideo sample_video(const std::string& path, const MediaBudget& budget = {}, int64_t image_size = 0);

std::vector<Image> load_video_frames(const std::string& path);

// The sampled frames pre-processed: [F, 3, image_size, image_size] float32.
torch::Tensor load_video_tensor(const std::string& path, int64_t image_size, const MediaBudget& budget = {});

}  // namespace qalign::data
