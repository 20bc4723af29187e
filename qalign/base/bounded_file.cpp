#include "qalign/base/bounded_file.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "qalign/base/error.h"
#include "qalign/base/regular_file.h"

namespace qalign::io {

namespace {

[[noreturn]] void too_large(const std::string& path, uint64_t size, uint64_t max_bytes, const std::string& what) {
  fail(path, "", byte_count_text(size) + ", above the " + byte_count_text(max_bytes) + " limit for " + what);
}

}  // namespace

std::string byte_count_text(uint64_t bytes) {
  if (bytes < 1024) return std::to_string(bytes) + " bytes";
  const char* units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(bytes) / 1024;
  size_t u = 0;
  while (v >= 1024 && u + 1 < sizeof units / sizeof *units) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  return buf;
}

void check_file_size(const std::string& path, uint64_t max_bytes, const std::string& what) {
  require_regular_file(path);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail(path, "", std::string("cannot open file: ") + std::strerror(errno));
  if (static_cast<uint64_t>(st.st_size) > max_bytes)
    too_large(path, static_cast<uint64_t>(st.st_size), max_bytes, what);
}

std::string read_file_at_most(const std::string& path, uint64_t max_bytes, const std::string& what) {
  check_file_size(path, max_bytes, what);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "", "cannot open file");
  std::string text;
  char buf[1 << 16];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<size_t>(in.gcount()));
    if (text.size() > max_bytes) too_large(path, text.size(), max_bytes, what);
  }
  return text;
}

}  // namespace qalign::io
