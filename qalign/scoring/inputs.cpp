#include "qalign/scoring/inputs.h"

#include <algorithm>
#include <cctype>

#include "qalign/base/error.h"
#include "qalign/base/log.h"
#include "qalign/media_type.h"

namespace qalign::scoring {

namespace fs = std::filesystem;

bool is_media_path(const std::string& path) {
  static const std::vector<std::string> image_ext = {".jpg",  ".jpeg", ".png", ".bmp", ".tif",
                                                     ".tiff", ".webp", ".ppm", ".pgm", ".jp2"};
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return std::find(image_ext.begin(), image_ext.end(), ext) != image_ext.end() || is_video_path(path);
}

bool can_read_twice(const std::vector<std::string>& args) {
  std::error_code ec;
  return std::all_of(args.begin(), args.end(), [&](const std::string& a) {
    return a.empty() || a[0] != '@' || fs::is_regular_file(a.substr(1), ec);
  });
}

InputStream::InputStream(std::vector<std::string> args) : args_(std::move(args)) {}

void InputStream::open_folder(const fs::path& dir) {
  Folder f;
  std::error_code ec;
  // An unreadable folder is skipped like `find` does, rather than ending a run of millions.
  for (fs::directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end; !ec && it != end;
       it.increment(ec))
    f.entries.push_back(it->path());
  if (ec) log::warn("skipped: ", dir.string(), ": cannot list the folder: ", ec.message());
  std::sort(f.entries.begin(), f.entries.end(),
            [](const fs::path& a, const fs::path& b) { return a.filename().native() < b.filename().native(); });
  walk_.push_back(std::move(f));
}

std::optional<std::string> InputStream::next() {
  for (;;) {
    if (list_.is_open()) {
      std::string line;
      if (std::getline(list_, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (!line.empty()) return line;
        continue;
      }
      if (list_.bad()) fail(list_name_, "", "reading the input list failed");
      list_.close();
    }
    while (!walk_.empty()) {
      Folder& f = walk_.back();
      if (f.at == f.entries.size()) {
        walk_.pop_back();
        continue;
      }
      const fs::path p = f.entries[f.at++];
      std::error_code ec;
      const auto status = fs::symlink_status(p, ec);
      // A status that cannot be read (a path over PATH_MAX, say) is that item's error, not a silent skip.
      if (ec && ec != std::errc::no_such_file_or_directory) {
        if (is_media_path(p.string())) return p.string();  // its row says why
        log::warn("skipped: ", p.string(), ": ", ec.message());
        continue;
      }
      // Linked folders are not entered: a link back up the tree would never end.
      if (fs::is_directory(status)) {
        open_folder(p);
      } else if (fs::is_regular_file(p, ec) && is_media_path(p.string())) {
        return p.string();
      }
    }
    if (arg_ == args_.size()) return std::nullopt;
    const std::string& a = args_[arg_++];
    if (!a.empty() && a[0] == '@') {
      list_name_ = a.substr(1);
      list_.open(list_name_);
      if (!list_) fail(list_name_, "", "cannot open the input list");
    } else if (std::error_code ec; fs::is_directory(a, ec)) {
      open_folder(a);
    } else {
      return a;  // a missing file is reported when it is scored
    }
  }
}

}  // namespace qalign::scoring
