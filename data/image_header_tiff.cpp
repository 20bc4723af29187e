// TIFF (and BigTIFF): the first image file directory, the page OpenCV decodes, read for the size,
// samples, bits per sample and the strip or tile libtiff reads at a time.
#include <algorithm>

#include "data/image_header_formats.h"

namespace qalign::data {

namespace {

enum Tag : uint16_t {
  kWidth = 256,
  kHeight = 257,
  kBitsPerSample = 258,
  kSamplesPerPixel = 277,
  kRowsPerStrip = 278,
  kTileWidth = 322,
  kTileLength = 323,
};

// The directory's layout: classic TIFF has 2-byte counts, 12-byte entries and 4-byte offsets,
// BigTIFF 8, 20 and 8.
struct Layout {
  bool little = true;
  bool big = false;
  uint64_t get(const std::vector<uint8_t>& b, size_t pos, int n) const {
    return little ? read_le(b, pos, n) : read_be(b, pos, n);
  }
  int count_bytes() const { return big ? 8 : 2; }
  int entry_bytes() const { return big ? 20 : 12; }
  int offset_bytes() const { return big ? 8 : 4; }
};

// The first value of an entry (SHORT, LONG or LONG8), inline or at its offset.
uint64_t first_value(const std::vector<uint8_t>& b, const Layout& l, size_t entry) {
  const uint64_t type = l.get(b, entry + 2, 2);
  const int size = type == 3 ? 2 : type == 16 ? 8 : 4;
  const uint64_t count = l.get(b, entry + 4, l.offset_bytes());
  const size_t field = entry + 4 + l.offset_bytes();
  if (count <= static_cast<uint64_t>(l.offset_bytes() / size)) return l.get(b, field, size);
  const uint64_t at = l.get(b, field, l.offset_bytes());
  return at < b.size() ? l.get(b, at, size) : 0;
}

// OpenCV reads 8-bit pictures as RGBA through a strip- or tile-sized buffer, deeper ones with
// their samples; its output has 1, 3 or 4 channels.
double tiff_decoder_bytes(const ImageHeader& h, uint64_t samples, uint64_t bits, uint64_t tile_w, uint64_t tile_h) {
  const int bytes = sample_bytes(static_cast<int64_t>(bits));
  const double channels = samples <= 1 ? 1 : samples == 3 ? 3 : 4;
  const auto buffer_w = static_cast<int64_t>(std::min<uint64_t>(tile_w, static_cast<uint64_t>(h.width)));
  const auto buffer_h = static_cast<int64_t>(std::min<uint64_t>(tile_h, static_cast<uint64_t>(h.height)));
  return pixel_bytes(h.width, h.height, channels * bytes) +
         pixel_bytes(buffer_w, buffer_h, std::max<double>(4, static_cast<double>(samples)) * bytes);
}

}  // namespace

ImageHeader read_tiff_header(const std::vector<uint8_t>& b) {
  ImageHeader h;
  h.format = "TIFF";
  Layout l;
  l.little = b[0] == 'I';
  l.big = l.get(b, 2, 2) == 43;
  const uint64_t ifd = l.big ? l.get(b, 8, 8) : l.get(b, 4, 4);
  if (ifd == 0 || ifd >= b.size()) return h;
  const uint64_t entries = l.get(b, ifd, l.count_bytes());
  uint64_t samples = 1, bits = 1, tile_w = UINT64_MAX, tile_h = UINT64_MAX;
  for (uint64_t i = 0; i < entries; ++i) {
    const uint64_t entry = ifd + l.count_bytes() + i * l.entry_bytes();
    if (entry + l.entry_bytes() > b.size()) break;
    const uint64_t value = first_value(b, l, entry);
    switch (l.get(b, entry, 2)) {
      case kWidth:
        h.width = static_cast<int64_t>(std::min<uint64_t>(value, INT64_MAX));
        break;
      case kHeight:
        h.height = static_cast<int64_t>(std::min<uint64_t>(value, INT64_MAX));
        break;
      case kBitsPerSample:
        bits = value;
        break;
      case kSamplesPerPixel:
        samples = value;
        break;
      case kRowsPerStrip:
      case kTileLength:
        tile_h = value;
        break;
      case kTileWidth:
        tile_w = value;
        break;
      default:
        break;
    }
  }
  h.decoder_bytes = tiff_decoder_bytes(h, samples, bits, tile_w, tile_h);
  return h;
}

}  // namespace qalign::data
