#include "data/image_header.h"

#include <algorithm>
#include <cstring>

#include "data/image_header_formats.h"

namespace qalign::data {

std::optional<ImageHeader> read_image_header(const std::vector<uint8_t>& bytes) {
  auto at = [&](size_t pos, const auto& s) {
    // Sized by the literal, not strlen: several signatures hold zero bytes.
    return bytes.size() >= pos + sizeof(s) - 1 && std::memcmp(bytes.data() + pos, s, sizeof(s) - 1) == 0;
  };
  if (at(0, "\xFF\xD8\xFF")) return read_jpeg_header(bytes);
  if (at(0, "\x89PNG\r\n\x1A\n")) return read_png_header(bytes);
  if (at(0, "II*\0") || at(0, "MM\0*") || at(0, "II+\0") || at(0, "MM\0+")) return read_tiff_header(bytes);
  if (at(0, "BM")) return read_bmp_header(bytes);
  if (at(0, "RIFF") && at(8, "WEBP")) return read_webp_header(bytes);
  if (bytes.size() >= 2 && bytes[0] == 'P' && bytes[1] >= '1' && bytes[1] <= '6') return read_pnm_header(bytes);
  if (at(0, "\0\0\0\x0CjP  \r\n\x87\n") || at(0, "\xFF\x4F\xFF\x51")) return read_jpeg2000_header(bytes);
  return std::nullopt;
}

}  // namespace qalign::data
