#pragma once
// Most readers take a path, so each input is written to a file first: one private folder per
// process (on /dev/shm when there is one, to keep the disk out of the loop), removed at exit.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <torch/torch.h>

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

// Reads every byte of every tensor (through its strided view), so that a tensor pointing outside
// its data shows up as an ASan read error rather than passing unread.
template <class Named>
void read_every_byte(const Named& tensors) {
  uint8_t sum = 0;
  for (const auto& [name, tensor] : tensors) {
    const auto bytes = tensor.contiguous();
    const auto* p = static_cast<const uint8_t*>(bytes.data_ptr());
    for (size_t i = 0, n = bytes.numel() * bytes.element_size(); i < n; ++i) sum ^= p[i];
  }
  volatile uint8_t sink = sum;
  (void)sink;
}

}  // namespace qalign::fuzz
