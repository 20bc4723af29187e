#include "qalign/media_type.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "qalign/base/error.h"
#include "qalign/base/regular_file.h"

namespace qalign {

namespace {

enum class Content { kUnknown, kImage, kVideo };

Content sniff(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  uint8_t b[16] = {};
  if (!in.read(reinterpret_cast<char*>(b), sizeof b)) return Content::kUnknown;
  // Sized by the literal, not strlen: several signatures hold zero bytes.
  auto at = [&](size_t pos, const auto& s) { return std::memcmp(b + pos, s, sizeof(s) - 1) == 0; };
  if (at(0, "\xFF\xD8\xFF") || at(0, "\x89PNG\r\n\x1A\n") || is_gif_bytes(b, sizeof b) || at(0, "BM") ||
      at(0, "II*\0") || at(0, "MM\0*") || (at(0, "RIFF") && at(8, "WEBP")) || at(0, "\0\0\0\x0CjP  "))
    return Content::kImage;
  if (at(0, "RIFF") && at(8, "AVI ")) return Content::kVideo;
  if (at(0, "\x1A\x45\xDF\xA3")) return Content::kVideo;  // Matroska / WebM (EBML)
  if (at(0, "FLV")) return Content::kVideo;
  if (at(0, "\x30\x26\xB2\x75")) return Content::kVideo;                                              // ASF / WMV
  if (b[0] == 0 && b[1] == 0 && b[2] == 1 && (b[3] == 0xBA || b[3] == 0xB3)) return Content::kVideo;  // MPEG-PS/ES
  if (at(4, "ftyp")) {
    // ISO media also holds still images (HEIF, AVIF); only their brands are excluded.
    for (const char* still : {"heic", "heix", "mif1", "msf1", "avif", "avis"})
      if (std::memcmp(b + 8, still, 4) == 0) return Content::kImage;
    return Content::kVideo;
  }
  return Content::kUnknown;
}

}  // namespace

std::string lower_extension(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext;
}

bool is_gif_bytes(const unsigned char* bytes, size_t size) {
  return size >= 6 && (std::memcmp(bytes, "GIF87a", 6) == 0 || std::memcmp(bytes, "GIF89a", 6) == 0);
}

void require_media_file(const std::string& path, const std::string& what) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) fail(path, "", what + " file does not exist");
  io::require_regular_file(path);
}

bool has_video_extension(const std::string& path) {
  static const char* const kVideoExtensions[] = {".avi", ".mp4",  ".m4v", ".mkv", ".mov", ".webm", ".wmv", ".flv",
                                                 ".mpg", ".mpeg", ".3gp", ".ts",  ".mts", ".m2ts", ".ogv", ".asf"};
  const std::string ext = lower_extension(path);
  return std::any_of(std::begin(kVideoExtensions), std::end(kVideoExtensions), [&](const char* e) { return ext == e; });
}

bool is_video_path(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_regular_file(path, ec)) {
    const Content c = sniff(path);
    if (c != Content::kUnknown) return c == Content::kVideo;
  }
  return has_video_extension(path);
}

}  // namespace qalign
