#pragma once
// What a user passes to `qalign score`: files, folders and @lists (one path per line), read as a
// stream so a list of millions of lines or a deep tree is never held whole. The order is fixed:
// the arguments in turn; a list's lines as written (blank lines skipped); a folder depth first,
// each folder's entries in byte order of their names, media files picked by extension. An entry
// whose status cannot be read (a path over PATH_MAX) is still an input when its name is a
// picture's or a video's, so that its row says why; any other is named in a warning.
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

namespace qalign::scoring {

// Image and video extensions a folder walk picks up (files named directly are always taken).
bool is_media_path(const std::string& path);

// Whether every @list in `args` is a file, which a second reader can read again (a pipe, such as
// @/dev/stdin, gives its lines once).
bool can_read_twice(const std::vector<std::string>& args);

class InputStream {
 public:
  explicit InputStream(std::vector<std::string> args);

  // The next input, or nullopt after the last. Throws qalign::Error naming an @list that cannot
  // be opened or read.
  std::optional<std::string> next();

 private:
  struct Folder {
    std::vector<std::filesystem::path> entries;  // one folder's listing, sorted: the walk's only bulk memory
    size_t at = 0;
  };
  void open_folder(const std::filesystem::path& dir);

  std::vector<std::string> args_;
  size_t arg_ = 0;
  std::ifstream list_;
  std::string list_name_;
  std::vector<Folder> walk_;  // the folders open on the way down
};

}  // namespace qalign::scoring
