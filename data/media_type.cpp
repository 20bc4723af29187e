#include "data/media_type.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace qalign::data {

namespace {

std::string lower_extension(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext;
}

bool starts_like_video(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  uint8_t b[16] = {};
  if (!in.read(reinterpret_cast<char*>(b), sizeof b)) return false;
  auto at = [&](size_t pos, const char* s) { return std::memcmp(b + pos, s, std::strlen(s)) == 0; };
  if (at(0, "RIFF") && at(8, "AVI ")) return true;
  if (at(0, "\x1A\x45\xDF\xA3")) return true;  // Matroska / WebM (EBML)
  if (at(0, "FLV")) return true;
  if (at(0, "\x30\x26\xB2\x75")) return true;                                  // ASF / WMV
  if (b[0] == 0 && b[1] == 0 && b[2] == 1 && (b[3] == 0xBA || b[3] == 0xB3)) return true;  // MPEG-PS/ES
  if (at(4, "ftyp")) {
    // ISO media also holds still images (HEIF, AVIF); only their brands are excluded.
    for (const char* still : {"heic", "heix", "mif1", "msf1", "avif", "avis"})
      if (at(8, still)) return false;
    return true;
  }
  return false;
}

}  // namespace

bool is_video_path(const std::string& path) {
  static const char* const kVideoExtensions[] = {".avi", ".mp4", ".m4v", ".mkv", ".mov", ".webm", ".wmv",
                                                 ".flv", ".mpg", ".mpeg", ".3gp", ".ts", ".mts", ".m2ts",
                                                 ".ogv", ".asf"};
  const std::string ext = lower_extension(path);
  for (const char* e : kVideoExtensions)
    if (ext == e) return true;
  return starts_like_video(path);
}

}  // namespace qalign::data
