#include "qalign/base/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "qalign/base/error.h"
#include "qalign/base/regular_file.h"

namespace qalign::io {

AtomicWriter::AtomicWriter(std::string path) : path_(std::move(path)) {
  tmp_ = path_ + ".tmp." + std::to_string(::getpid());
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail(path_, "", std::string("cannot create temporary file: ") + std::strerror(errno));
}

AtomicWriter::~AtomicWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
}

void write_all(int fd, const void* data, size_t size, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail(path, "", std::string("write failed: ") + std::strerror(errno));
    p += n;
    size -= static_cast<size_t>(n);
  }
}

void AtomicWriter::write(const void* data, size_t size) { write_all(fd_, data, size, path_); }

void AtomicWriter::commit() {
  if (::fsync(fd_) != 0) fail(path_, "", std::string("fsync failed: ") + std::strerror(errno));
  if (::close(fd_) != 0) {
    fd_ = -1;
    fail(path_, "", std::string("close failed: ") + std::strerror(errno));
  }
  fd_ = -1;
  if (::rename(tmp_.c_str(), path_.c_str()) != 0)
    fail(path_, "", std::string("rename failed: ") + std::strerror(errno));
  committed_ = true;
  const auto dir = std::filesystem::absolute(path_).parent_path();
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

void write_file_atomic(const std::string& path, const std::string& contents) {
  AtomicWriter w(path);
  w.write(contents.data(), contents.size());
  w.commit();
}

std::string read_file(const std::string& path) {
  require_regular_file(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "", "cannot open file");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace qalign::io
