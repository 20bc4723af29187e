#include "data/video.h"

namespace qalign::data {

int64_t second_start(double fps, int64_t i) { return static_cast<int64_t>(fps * static_cast<double>(i)); }

std::vector<int64_t> one_per_second_indices(double fps, int64_t frame_count) {
  std::vector<int64_t> idx;
  const auto n = static_cast<int64_t>(static_cast<double>(frame_count) / fps);
  for (int64_t i = 0; i < n; ++i) idx.push_back(second_start(fps, i));
  return idx;
}

}  // namespace qalign::data
