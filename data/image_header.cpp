#include "data/image_header.h"

#include <algorithm>

namespace qalign::data {

namespace {

uint32_t big_endian(const std::vector<uint8_t>& b, size_t pos, int n) {
  uint32_t v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | b[pos + i];
  return v;
}

bool is_frame_marker(uint8_t m) {  // SOF0..SOF15 without DHT (C4), JPG (C8) and DAC (CC)
  return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
}

bool is_standalone_marker(uint8_t m) { return m == 0x01 || (m >= 0xD0 && m <= 0xD7); }

// Walks the marker segments; entropy-coded data after each SOS is skipped up to the next real
// marker (0xFF followed by neither a stuffed 0x00 nor a restart marker).
ImageHeader read_jpeg(const std::vector<uint8_t>& b) {
  ImageHeader h;
  h.format = "JPEG";
  size_t pos = 2;
  const size_t n = b.size();
  while (true) {
    while (pos < n && b[pos] != 0xFF) ++pos;  // libjpeg skips stray bytes too
    while (pos < n && b[pos] == 0xFF) ++pos;  // fill bytes
    if (pos >= n) return h;
    const uint8_t marker = b[pos++];
    if (marker == 0xD9) {
      h.complete = true;
      return h;
    }
    if (is_standalone_marker(marker)) continue;
    if (pos + 2 > n) return h;
    const size_t length = big_endian(b, pos, 2);
    if (length < 2 || pos + length > n) return h;
    if (is_frame_marker(marker) && length >= 7) {
      h.height = big_endian(b, pos + 3, 2);
      h.width = big_endian(b, pos + 5, 2);
    }
    pos += length;
    if (marker == 0xDA) {
      for (; pos + 1 < n; ++pos) {
        const uint8_t next = b[pos + 1];
        if (b[pos] == 0xFF && next != 0x00 && next != 0xFF && !(next >= 0xD0 && next <= 0xD7)) break;
      }
      if (pos + 1 >= n) return h;
    }
  }
}

// Chunks are length, type, data, CRC; the image is complete once IEND is reached.
ImageHeader read_png(const std::vector<uint8_t>& b) {
  ImageHeader h;
  h.format = "PNG";
  size_t pos = 8;
  while (pos + 8 <= b.size()) {
    const uint64_t length = big_endian(b, pos, 4);
    const std::string type(b.begin() + pos + 4, b.begin() + pos + 8);
    if (pos + 12 + length > b.size()) return h;
    if (type == "IHDR" && length >= 8) {
      h.width = big_endian(b, pos + 8, 4);
      h.height = big_endian(b, pos + 12, 4);
    }
    if (type == "IEND") {
      h.complete = true;
      return h;
    }
    pos += 12 + length;
  }
  return h;
}

}  // namespace

std::optional<ImageHeader> read_image_header(const std::vector<uint8_t>& bytes) {
  static const uint8_t kPng[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  if (bytes.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF) return read_jpeg(bytes);
  if (bytes.size() >= 8 && std::equal(kPng, kPng + 8, bytes.begin())) return read_png(bytes);
  return std::nullopt;
}

}  // namespace qalign::data
