#pragma once
// Whether a video's pictures keep one size. OpenCV's FFmpeg reader converts every frame with the
// converter it made for the first, so after a change of size it hands out stale or garbage frames
// and says nothing; the container's packets are therefore read first (not decoded), each
// picture's size taken from the codec's parser, or from the JPEG header of a Motion-JPEG frame.
#include <cstdint>
#include <optional>
#include <string>

namespace qalign::data {

struct SizeChange {
  int64_t frame = 0;  // the first frame, in stream order, of the new size
  int64_t width = 0, height = 0;
  int64_t first_width = 0, first_height = 0;
};

// The first size change, or nullopt when there is none or nothing tells the sizes (a codec whose
// parser reports none, a container FFmpeg cannot open: the decoder then says what is wrong).
std::optional<SizeChange> find_size_change(const std::string& path);

// Throws qalign::Error naming `path` and the frame when the frames change size.
void require_one_frame_size(const std::string& path);

}  // namespace qalign::data
