// The uncompressed and simply framed formats: BMP, PNM (PBM, PGM, PPM) and WebP, whose size sits
// at a fixed place in the first bytes.
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <string>

#include "data/image_header_formats.h"

namespace qalign::data {

// The Windows header (40 bytes or more) has signed 32-bit sides, the height negative for a
// top-down picture; the OS/2 one (12 bytes) 16-bit sides. OpenCV hands out BGR, or BGRA for 32 bits.
ImageHeader read_bmp_header(const std::vector<uint8_t>& b) {
  ImageHeader h;
  h.format = "BMP";
  const uint64_t info = read_le(b, 14, 4);
  int64_t bits = 24;
  if (info == 12) {
    h.width = static_cast<int64_t>(read_le(b, 18, 2));
    h.height = static_cast<int64_t>(read_le(b, 20, 2));
    bits = static_cast<int64_t>(read_le(b, 24, 2));
  } else if (info >= 40 && b.size() >= 30) {
    h.width = static_cast<int32_t>(read_le(b, 18, 4));
    h.height = std::llabs(static_cast<int64_t>(static_cast<int32_t>(read_le(b, 22, 4))));
    bits = static_cast<int64_t>(read_le(b, 28, 2));
  }
  h.decoder_bytes = pixel_bytes(h.width, h.height, bits == 32 ? 4 : 3);
  return h;
}

namespace {

// The next whitespace-separated number of a PNM header, skipping '#' comments; -1 when absent.
int64_t pnm_number(const std::vector<uint8_t>& b, size_t& pos) {
  while (pos < b.size()) {
    if (b[pos] == '#') {
      while (pos < b.size() && b[pos] != '\n' && b[pos] != '\r') ++pos;
    } else if (std::isspace(b[pos])) {
      ++pos;
    } else {
      break;
    }
  }
  int64_t v = 0;
  size_t digits = 0;
  for (; pos < b.size() && std::isdigit(b[pos]) && digits < 12; ++pos, ++digits) v = v * 10 + (b[pos] - '0');
  return digits == 0 ? -1 : v;
}

}  // namespace

// "P1".."P6", then width, height and (but for bitmaps) the largest sample value. OpenCV hands out
// one channel for P1, P2, P4, P5, three for P3, P6; 16-bit samples when the largest is over 255.
ImageHeader read_pnm_header(const std::vector<uint8_t>& b) {
  ImageHeader h;
  h.format = "PNM";
  const char kind = static_cast<char>(b[1]);
  size_t pos = 2;
  h.width = std::max<int64_t>(pnm_number(b, pos), 0);
  h.height = std::max<int64_t>(pnm_number(b, pos), 0);
  const bool bitmap = kind == '1' || kind == '4';
  const int64_t max_value = bitmap ? 1 : pnm_number(b, pos);
  const int channels = kind == '3' || kind == '6' ? 3 : 1;
  h.decoder_bytes = pixel_bytes(h.width, h.height, channels * (max_value > 255 ? 2 : 1));
  return h;
}

// RIFF, then one of three first chunks: "VP8 " (lossy: 14-bit sides after the frame's start
// code), "VP8L" (lossless: 14-bit sides minus one) or "VP8X" (extended: 24-bit canvas sides minus
// one). OpenCV hands out BGR or BGRA.
ImageHeader read_webp_header(const std::vector<uint8_t>& b) {
  ImageHeader h;
  h.format = "WebP";
  const std::string chunk(b.begin() + 12, b.begin() + std::min<size_t>(16, b.size()));
  if (chunk == "VP8 " && read_be(b, 23, 3) == 0x9D012A) {
    h.width = static_cast<int64_t>(read_le(b, 26, 2) & 0x3FFF);
    h.height = static_cast<int64_t>(read_le(b, 28, 2) & 0x3FFF);
  } else if (chunk == "VP8L" && b.size() >= 25 && b[20] == 0x2F) {
    const uint64_t bits = read_le(b, 21, 4);
    h.width = static_cast<int64_t>((bits & 0x3FFF) + 1);
    h.height = static_cast<int64_t>(((bits >> 14) & 0x3FFF) + 1);
  } else if (chunk == "VP8X" && b.size() >= 30) {
    h.width = static_cast<int64_t>(read_le(b, 24, 3) + 1);
    h.height = static_cast<int64_t>(read_le(b, 27, 3) + 1);
  }
  h.decoder_bytes = pixel_bytes(h.width, h.height, 4);
  return h;
}

}  // namespace qalign::data
