#pragma once
// The per-format header readers read_image_header dispatches to, each given bytes that start with
// its signature, and the bounds-checked integer reads they share.
#include <cstdint>
#include <vector>

#include "data/image_header.h"

namespace qalign::data {

ImageHeader read_jpeg_header(const std::vector<uint8_t>& bytes);
ImageHeader read_png_header(const std::vector<uint8_t>& bytes);
ImageHeader read_tiff_header(const std::vector<uint8_t>& bytes);
ImageHeader read_bmp_header(const std::vector<uint8_t>& bytes);
ImageHeader read_webp_header(const std::vector<uint8_t>& bytes);
ImageHeader read_pnm_header(const std::vector<uint8_t>& bytes);
ImageHeader read_jpeg2000_header(const std::vector<uint8_t>& bytes);

// An n-byte unsigned integer at `pos`, or 0 past the end (a header cut short reads as no size).
inline uint64_t read_be(const std::vector<uint8_t>& b, size_t pos, int n) {
  if (pos > b.size() || b.size() - pos < static_cast<size_t>(n)) return 0;
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | b[pos + i];
  return v;
}
inline uint64_t read_le(const std::vector<uint8_t>& b, size_t pos, int n) {
  if (pos > b.size() || b.size() - pos < static_cast<size_t>(n)) return 0;
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | b[pos + i];
  return v;
}

// Bytes of one sample of `bits` bits as OpenCV hands it out (8, 16, 32 or 64 bits).
inline int sample_bytes(int64_t bits) { return bits <= 8 ? 1 : bits <= 16 ? 2 : bits <= 32 ? 4 : 8; }

// width * height * bytes_per_pixel in double (a hostile header's product overflows int64).
inline double pixel_bytes(int64_t width, int64_t height, double bytes_per_pixel) {
  return static_cast<double>(width) * static_cast<double>(height) * bytes_per_pixel;
}

}  // namespace qalign::data
