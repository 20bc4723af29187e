// JPEG: the marker segments walked to the end-of-image marker, the frame header read for the size
// and components, the scans counted.
#include "data/image_header_formats.h"

namespace qalign::data {

namespace {

bool is_frame_marker(uint8_t m) {  // SOF0..SOF15 without DHT (C4), JPG (C8) and DAC (CC)
  return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
}

bool is_progressive_marker(uint8_t m) { return m == 0xC2 || m == 0xC6 || m == 0xCA || m == 0xCE; }

bool is_standalone_marker(uint8_t m) { return m == 0x01 || (m >= 0xD0 && m <= 0xD7); }

// libjpeg hands OpenCV grey or colour (CMYK converted row by row); a progressive or multi-scan
// picture also keeps every component's coefficients, 2 bytes a sample, until the last scan.
double jpeg_decoder_bytes(const ImageHeader& h, int64_t components, bool progressive) {
  const double output = components == 1 ? 1 : 3;
  const double coefficients = progressive || h.scans > 1 ? 2.0 * static_cast<double>(components) : 0;
  return pixel_bytes(h.width, h.height, output + coefficients);
}

}  // namespace

// Entropy-coded data after each SOS is skipped up to the next real marker (0xFF followed by
// neither a stuffed 0x00 nor a restart marker).
ImageHeader read_jpeg_header(const std::vector<uint8_t>& b) {
  ImageHeader h;
  h.format = "JPEG";
  h.complete = false;
  int64_t components = 3;
  bool progressive = false;
  size_t pos = 2;
  const size_t n = b.size();
  while (true) {
    while (pos < n && b[pos] != 0xFF) ++pos;  // libjpeg skips stray bytes too
    while (pos < n && b[pos] == 0xFF) ++pos;  // fill bytes
    if (pos >= n) break;
    const uint8_t marker = b[pos++];
    if (marker == 0xD9) {
      h.complete = true;
      break;
    }
    if (is_standalone_marker(marker)) continue;
    if (pos + 2 > n) break;
    const size_t length = read_be(b, pos, 2);
    if (length < 2 || pos + length > n) break;
    if (is_frame_marker(marker) && length >= 8) {
      h.height = static_cast<int64_t>(read_be(b, pos + 3, 2));
      h.width = static_cast<int64_t>(read_be(b, pos + 5, 2));
      components = static_cast<int64_t>(b[pos + 7]);
      progressive = is_progressive_marker(marker);
    }
    pos += length;
    if (marker == 0xDA) {
      ++h.scans;
      for (; pos + 1 < n; ++pos) {
        const uint8_t next = b[pos + 1];
        if (b[pos] == 0xFF && next != 0x00 && next != 0xFF && !(next >= 0xD0 && next <= 0xD7)) break;
      }
      if (pos + 1 >= n) break;
    }
  }
  h.decoder_bytes = jpeg_decoder_bytes(h, components, progressive);
  return h;
}

}  // namespace qalign::data
