#pragma once
// A look at an encoded picture before decoding it, for every format qalign reads: its size and
// what the decoder will allocate for it, so that decompression bombs are refused before any
// allocation; for JPEG its scan count (each progressive scan is a pass over the whole picture);
// for JPEG and PNG whether the data reaches the end-of-image marker, because OpenCV silently
// returns a grey-filled picture for a truncated JPEG where PIL raises.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace qalign::data {

struct ImageHeader {
  std::string format;  // "JPEG", "PNG", "TIFF", "BMP", "WebP", "PNM" or "JPEG 2000"
  int64_t width = 0;
  int64_t height = 0;  // 0 when the data stops before the size is given
  // Bytes OpenCV's decoder allocates (its output picture and working buffers), from the size,
  // channels and sample depth; a double, as a hostile header's product overflows int64.
  double decoder_bytes = 0;
  int64_t scans = 0;     // JPEG: start-of-scan markers seen
  bool complete = true;  // JPEG and PNG: false when the data ends before the end-of-image marker
};

// The formats read_image_header knows, for messages.
inline constexpr const char* kImageFormats = "JPEG, PNG, TIFF, BMP, WebP, PNM (PPM, PGM, PBM) and JPEG 2000";

// std::nullopt when `bytes` are none of kImageFormats.
std::optional<ImageHeader> read_image_header(const std::vector<uint8_t>& bytes);

// PIL's decompression-bomb limit (2 * Image.MAX_IMAGE_PIXELS): larger images are errors there.
inline constexpr int64_t kMaxImagePixels = 2 * (int64_t{1024} * 1024 * 1024 / 4 / 3);

// Scans a JPEG may have. Encoders' progressive scripts write about 10 (mozjpeg's search a few
// more); each scan costs a pass over the whole picture, so thousands cost minutes.
inline constexpr int64_t kMaxJpegScans = 100;

}  // namespace qalign::data
