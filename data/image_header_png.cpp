// PNG: chunks are length, type, data, CRC; IHDR gives the size, bit depth and colour type, and the
// picture is complete once IEND is reached.
#include <string>

#include "data/image_header_formats.h"

namespace qalign::data {

namespace {

// OpenCV's PNG reader hands out grey (type 0) as one channel, RGB (2) as three, and palette (3,
// four with transparency), grey+alpha (4) and RGBA (6) as up to four; 16-bit samples stay 16-bit.
double png_bytes_per_pixel(uint8_t bit_depth, uint8_t colour_type) {
  const int channels = colour_type == 0 ? 1 : colour_type == 2 ? 3 : 4;
  return channels * (bit_depth == 16 ? 2 : 1);
}

}  // namespace

ImageHeader read_png_header(const std::vector<uint8_t>& b) {
  ImageHeader h;
  h.format = "PNG";
  h.complete = false;
  uint8_t bit_depth = 8, colour_type = 6;
  size_t pos = 8;
  while (pos + 8 <= b.size()) {
    const uint64_t length = read_be(b, pos, 4);
    const std::string type(b.begin() + pos + 4, b.begin() + pos + 8);
    if (pos + 12 + length > b.size()) break;
    if (type == "IHDR" && length >= 13) {
      h.width = static_cast<int64_t>(read_be(b, pos + 8, 4));
      h.height = static_cast<int64_t>(read_be(b, pos + 12, 4));
      bit_depth = b[pos + 16];
      colour_type = b[pos + 17];
    }
    if (type == "IEND") {
      h.complete = true;
      break;
    }
    pos += 12 + length;
  }
  h.decoder_bytes = pixel_bytes(h.width, h.height, png_bytes_per_pixel(bit_depth, colour_type));
  return h;
}

}  // namespace qalign::data
