#include "qalign/base/regular_file.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "qalign/base/error.h"

namespace qalign::io {

namespace {

const char* kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a folder";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
  return "not a plain file";
}

}  // namespace

void require_regular_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail(path, "", std::string("cannot open file: ") + std::strerror(errno));
  if (!S_ISREG(st.st_mode))
    fail(path, "", std::string("cannot open file: it is ") + kind_of(st.st_mode) + ", not a regular file");
}

}  // namespace qalign::io
