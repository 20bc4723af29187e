#include "tests/support/fixtures.h"

#include <array>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <stdlib.h>
#include <string>
#include <sys/wait.h>

namespace qalign::test {

std::string source_dir() { return QALIGN_SOURCE_DIR; }

std::string fixture(const std::string& rel) { return source_dir() + "/tests/fixtures/" + rel; }

std::string shared(const std::string& rel) {
  const std::filesystem::path p = std::filesystem::path(source_dir()) / ".." / "shared" / rel;
  return std::filesystem::exists(p) ? p.lexically_normal().string() : std::string();
}

std::string qalign_binary() { return QALIGN_BINARY; }

torch::Device test_device() {
  const char* d = std::getenv("QALIGN_TEST_DEVICE");
  return d != nullptr && std::string(d) == "cuda" ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
}

int run_command(const std::string& cmd, std::string* output) {
  const std::string full = cmd + " 2>&1";
  FILE* pipe = popen(full.c_str(), "r");
  if (!pipe) return -1;
  std::array<char, 4096> buf{};
  std::string out;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  const int status = pclose(pipe);
  if (output) *output = out;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

ScratchDir::ScratchDir(const std::string& tag) {
  std::string pattern = (std::filesystem::temp_directory_path() / (tag + "-XXXXXX")).string();
  if (!::mkdtemp(pattern.data())) throw std::runtime_error("cannot create a scratch folder in " + pattern);
  path_ = pattern;
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace qalign::test
