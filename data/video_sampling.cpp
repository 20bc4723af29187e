#include "data/video.h"

#include <sstream>

#include "qalign/base/error.h"

namespace qalign::data {

int64_t second_start(double fps, int64_t i) { return static_cast<int64_t>(fps * static_cast<double>(i)); }

int64_t sampled_seconds(const std::string& path, double fps, double frame_count, const std::string& counted) {
  const double seconds = frame_count / fps;
  // Written to be false for NaN and infinity too.
  if (!(seconds < static_cast<double>(kMaxVideoSeconds + 1))) {
    std::ostringstream what;
    what << "video lasts " << seconds << " s (" << frame_count << " frames " << counted << " at " << fps
         << " fps), over the " << kMaxVideoSeconds
         << " s limit: one frame per second is sampled and held in memory, so it is refused";
    fail(path, "", what.str());
  }
  return static_cast<int64_t>(seconds);
}

std::vector<int64_t> one_per_second_indices(double fps, int64_t frame_count) {
  std::vector<int64_t> idx;
  const auto n = static_cast<int64_t>(static_cast<double>(frame_count) / fps);
  for (int64_t i = 0; i < n; ++i) idx.push_back(second_start(fps, i));
  return idx;
}

}  // namespace qalign::data
