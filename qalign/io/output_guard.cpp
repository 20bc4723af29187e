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

bool same_file(const std::string& a, const std::string& b) {
  std::error_code ec;
  return fs::equivalent(a, b, ec) && !ec;
}

void remove_weight_files(const std::string& dir) {
  static const std::regex weights(R"((model|pytorch_model)(-\d+-of-\d+)?\.(safetensors|bin)(\.index\.json)?)");
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (entry.is_regular_file() && std::regex_match(entry.path().filename().string(), weights))
      fs::remove(entry.path());
}

OutputLock::OutputLock(const std::string& target) : path_(target + ".lock") {
  for (;;) {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) fail(path_, "", std::string("cannot create the lock file: ") + std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      const std::string holder = read_file(path_);
      ::close(fd_);
      fd_ = -1;
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
  const std::string pid = std::to_string(::getpid());
  if (::ftruncate(fd_, 0) == 0) write_all(fd_, pid.data(), pid.size(), path_);
}

OutputLock::~OutputLock() {
  if (fd_ < 0) return;
  ::unlink(path_.c_str());
  ::close(fd_);
}

}  // namespace qalign::io
