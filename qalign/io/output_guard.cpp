#include "qalign/io/output_guard.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <regex>

#include "qalign/base/atomic_file.h"
#include "qalign/base/error.h"

namespace qalign::io {

namespace fs = std::filesystem;

void require_new_folder(const std::string& dir, const std::string& source, const std::string& override_hint) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return;
  if (!fs::is_directory(dir, ec)) fail(source, "", dir + " exists and is not a folder");
  if (fs::is_empty(dir, ec)) return;
  fail(source, "", dir + " already holds files; " + override_hint);
}

void require_new_file(const std::string& path, const std::string& option, bool overwrite,
                      const std::vector<std::pair<std::string, std::string>>& inputs) {
  for (const auto& [input_option, input] : inputs)
    if (same_file(path, input))
      fail(option, "", path + " is " + input_option + ": write the output to a file of its own");
  std::error_code ec;
  if (fs::is_directory(path, ec)) fail(option, "", path + " is a folder; expected a file to write");
  if (fs::exists(path, ec) && !overwrite) fail(path, "", "exists; --overwrite replaces it");
}

bool same_file(const std::string& a, const std::string& b) {
  std::error_code ec;
  return fs::equivalent(a, b, ec) && !ec;
}

void remove_weight_files(const std::string& dir, const std::set<std::string>& keep) {
  static const std::regex weights(R"((model|pytorch_model)(-\d+-of-\d+)?\.(safetensors|bin)(\.index\.json)?)");
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (entry.is_regular_file() && std::regex_match(entry.path().filename().string(), weights) &&
        !keep.count(entry.path().filename().string()))
      fs::remove(entry.path());
}

OutputLock::OutputLock(const std::string& target) : OutputLock(target, target + ".lock") {}

OutputLock::OutputLock(const std::string& target, const std::string& lock_file) : path_(lock_file) {
  for (;;) {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) fail(path_, "", std::string("cannot create the lock file: ") + std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      const int error = errno;
      const std::string holder = error == EWOULDBLOCK ? read_file(path_).substr(0, 200) : "";
      ::close(fd_);
      fd_ = -1;
      if (error != EWOULDBLOCK) fail(path_, "", std::string("cannot lock the file: ") + std::strerror(error));
      fail(target, "",
           "another qalign (pid " + (holder.empty() ? std::string("unknown") : holder) +
               ") is writing it now; wait for it, or remove " + path_ + " if no such process runs");
    }
    // The holder before us may have removed the file between our open and our lock: then the
    // lock is on a name nobody else sees, so take it again on the file now at that path.
    struct stat held {
    }, named{};
    if (::fstat(fd_, &held) == 0 && ::stat(path_.c_str(), &named) == 0 && held.st_ino == named.st_ino &&
        held.st_dev == named.st_dev)
      break;
    ::close(fd_);
  }
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  const std::string holder = std::to_string(::getpid()) + " on " + host;
  if (::ftruncate(fd_, 0) == 0) write_all(fd_, holder.data(), holder.size(), path_);
}

OutputLock::~OutputLock() {
  if (fd_ < 0) return;
  ::unlink(path_.c_str());
  ::close(fd_);
}

}  // namespace qalign::io
