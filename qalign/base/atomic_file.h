#pragma once
// Crash-safe file writes: write to a temporary name beside the target, fsync, rename, fsync the
// folder. A crash leaves either the old file or the new one, never a torn one.
#include <cstdint>
#include <functional>
#include <string>

namespace qalign::io {

// An open temporary file; write() reports failures (disk full) as qalign::Error naming `path`.
class AtomicWriter {
 public:
  explicit AtomicWriter(std::string path);
  ~AtomicWriter();  // removes the temporary file unless commit() succeeded
  AtomicWriter(const AtomicWriter&) = delete;
  AtomicWriter& operator=(const AtomicWriter&) = delete;

  void write(const void* data, size_t size);
  void commit();

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

void write_file_atomic(const std::string& path, const std::string& contents);
// write(2) until all of `data` is out, retrying after signals; a failure throws naming `path`.
void write_all(int fd, const void* data, size_t size, const std::string& path);
// The whole file; a missing or non-regular file (io/regular_file.h) is an error naming it.
std::string read_file(const std::string& path);

}  // namespace qalign::io
