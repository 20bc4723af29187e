#include "data/inputs.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>

#include "data/image_decode.h"
#include "data/media_type.h"
#include "qalign/error.h"

namespace qalign::data {

namespace fs = std::filesystem;

bool is_media_path(const std::string& path) {
  static const std::vector<std::string> image_ext = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp",
                                                     ".ppm", ".pgm", ".jp2"};
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return std::find(image_ext.begin(), image_ext.end(), ext) != image_ext.end() || is_video_path(path);
}

std::vector<std::string> expand_inputs(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  for (const auto& a : args) {
    if (!a.empty() && a[0] == '@') {
      const std::string list = a.substr(1);
      std::ifstream in(list);
      if (!in) fail(list, "", "cannot open the input list");
      std::string line;
      while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (!line.empty()) out.push_back(line);
      }
    } else if (fs::is_directory(a)) {
      std::vector<std::string> found;
      for (const auto& e : fs::recursive_directory_iterator(a, fs::directory_options::skip_permission_denied))
        if (e.is_regular_file() && is_media_path(e.path().string())) found.push_back(e.path().string());
      std::sort(found.begin(), found.end());
      out.insert(out.end(), found.begin(), found.end());
    } else {
      out.push_back(a);  // a missing file is reported when it is scored
    }
  }
  return out;
}

}  // namespace qalign::data
