#pragma once
// Most readers take a path, so each input is written to a file first: one private folder per
// process (on /dev/shm when there is one, to keep the disk out of the loop), removed at exit.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace qalign::fuzz {

struct ScratchDir {
  std::string path;
  ScratchDir() {
    const char* base = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : std::getenv("TMPDIR");
    path = std::string(base ? base : "/tmp") + "/qalign-fuzz-XXXXXX";
    if (!::mkdtemp(path.data())) std::abort();
  }
  ~ScratchDir() { std::filesystem::remove_all(path); }
};

inline const std::string& scratch_dir() {
  static const ScratchDir dir;
  return dir.path;
}

// Writes the input to scratch_dir()/name and returns that path.
inline std::string write_input(const uint8_t* data, size_t size, const std::string& name) {
  const std::string path = scratch_dir() + "/" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!out) std::abort();
  return path;
}

}  // namespace qalign::fuzz
