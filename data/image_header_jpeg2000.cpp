// JPEG 2000: a JP2 file's image header box (inside the jp2h super-box), or a bare codestream's
// SIZ marker segment.
#include <algorithm>
#include <string>

#include "data/image_header_formats.h"

namespace qalign::data {

namespace {

// OpenJPEG decodes every component into 32-bit integers before OpenCV copies them into its
// 8- or 16-bit picture of 1, 3 or 4 channels.
double jpeg2000_decoder_bytes(const ImageHeader& h, uint64_t components, uint64_t bits) {
  const double c = static_cast<double>(components);
  const double output = std::min(c, 4.0) * sample_bytes(static_cast<int64_t>(bits));
  return pixel_bytes(h.width, h.height, 4 * c + output);
}

// SIZ: Lsiz, Rsiz, Xsiz, Ysiz, XOsiz, YOsiz, four tile fields, Csiz, then Ssiz per component.
ImageHeader read_siz(const std::vector<uint8_t>& b, size_t siz) {
  ImageHeader h;
  h.format = "JPEG 2000";
  const uint64_t x = read_be(b, siz + 6, 4), y = read_be(b, siz + 10, 4);
  const uint64_t x0 = read_be(b, siz + 14, 4), y0 = read_be(b, siz + 18, 4);
  h.width = x > x0 ? static_cast<int64_t>(x - x0) : 0;
  h.height = y > y0 ? static_cast<int64_t>(y - y0) : 0;
  const uint64_t components = read_be(b, siz + 38, 2);
  const uint64_t bits = (read_be(b, siz + 40, 1) & 0x7F) + 1;
  h.decoder_bytes = jpeg2000_decoder_bytes(h, components, bits);
  return h;
}

// The boxes from `pos` to `end`: 4-byte length (1: an 8-byte length follows; 0: to the end), type.
ImageHeader read_boxes(const std::vector<uint8_t>& b, size_t pos, size_t end) {
  while (pos + 8 <= end) {
    uint64_t length = read_be(b, pos, 4);
    const std::string type(b.begin() + pos + 4, b.begin() + pos + 8);
    size_t body = pos + 8;
    if (length == 1) {
      length = read_be(b, pos + 8, 8);
      body += 8;
    } else if (length == 0) {
      length = end - pos;
    }
    if (length < body - pos || length > end - pos) break;
    if (type == "jp2h") return read_boxes(b, body, pos + length);
    if (type == "ihdr") {
      ImageHeader h;
      h.format = "JPEG 2000";
      h.height = static_cast<int64_t>(read_be(b, body, 4));
      h.width = static_cast<int64_t>(read_be(b, body + 4, 4));
      h.decoder_bytes = jpeg2000_decoder_bytes(h, read_be(b, body + 8, 2), (read_be(b, body + 10, 1) & 0x7F) + 1);
      return h;
    }
    pos += length;
  }
  ImageHeader none;
  none.format = "JPEG 2000";
  return none;
}

}  // namespace

ImageHeader read_jpeg2000_header(const std::vector<uint8_t>& b) {
  if (b[0] == 0xFF) return read_siz(b, 2);
  return read_boxes(b, 12, b.size());
}

}  // namespace qalign::data
