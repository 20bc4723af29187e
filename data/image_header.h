#pragma once
// A look at an encoded JPEG or PNG before decoding it: its size, so that decompression bombs are
// refused before any allocation, and whether the data reaches the end-of-image marker, because
// OpenCV silently returns a grey-filled picture for a truncated JPEG where PIL raises.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace qalign::data {

struct ImageHeader {
  std::string format;  // "JPEG" or "PNG"
  int64_t width = 0;
  int64_t height = 0;  // 0 when the data stops before the size is given
  bool complete = false;
};

// std::nullopt when `bytes` are neither JPEG nor PNG.
std::optional<ImageHeader> read_image_header(const std::vector<uint8_t>& bytes);

// PIL's decompression-bomb limit (2 * Image.MAX_IMAGE_PIXELS): larger images are errors there.
inline constexpr int64_t kMaxImagePixels = 2 * (int64_t{1024} * 1024 * 1024 / 4 / 3);

}  // namespace qalign::data
