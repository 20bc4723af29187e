#pragma once
// What qalign may write over. Every output is new, or recognisably qalign's own output of the
// same job, or replaced only when the user passes the override the message names.
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace qalign::io {

// Fails unless `dir` is absent or an empty folder. `source` names it in the message (e.g.
// "--out DIR"), `override_hint` says how to write there anyway.
void require_new_folder(const std::string& dir, const std::string& source, const std::string& override_hint);

// Fails unless the file `path`, given as `option` (e.g. "--out"), may be written: absent, or with
// `overwrite` (the documented override) an existing file. Never one of `inputs` ((option, path)
// pairs: what the command reads), and never a folder, override or not.
void require_new_file(const std::string& path, const std::string& option, bool overwrite,
                      const std::vector<std::pair<std::string, std::string>>& inputs);

// Whether `a` and `b` name the same existing file (hard links and symlinks included).
bool same_file(const std::string& a, const std::string& b);

// Removes the weight files and their index from a model folder, but those named in `keep`, so
// that older weights cannot sit beside new ones that a loader would pass over (model.safetensors
// wins over shards).
void remove_weight_files(const std::string& dir, const std::set<std::string>& keep = {});

// An exclusive lock on `<target>.lock` (or `lock_file`) while one job writes `target`: a second
// job fails at once naming the process (pid and host) that holds it, instead of repeating the work
// and colliding midway. The lock file is removed on release.
class OutputLock {
 public:
  explicit OutputLock(const std::string& target);
  OutputLock(const std::string& target, const std::string& lock_file);
  ~OutputLock();
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace qalign::io
