#include "qalign/config/limits.h"

#include "qalign/base/error.h"

namespace qalign::config {

void check_worker_count(int64_t n, const std::string& source, const std::string& field) {
  if (n < 0 || n > kMaxWorkerThreads)
    fail(source, field,
         "expected 0 to " + std::to_string(kMaxWorkerThreads) + " worker threads, got " + std::to_string(n) +
             " (more threads cannot decode faster, and too many exhaust the system's thread limit)");
}

}  // namespace qalign::config
