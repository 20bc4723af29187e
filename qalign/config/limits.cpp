#include "qalign/config/limits.h"

#include "qalign/base/error.h"

namespace qalign::config {

void check_worker_count(int64_t n, const std::string& source, const std::string& field) {
  if (n < 0 || n > kMaxWorkerThreads)
    fail(source, field,
         "expected 0 to " + std::to_string(kMaxWorkerThreads) + " worker threads, got " + std::to_string(n) +
             " (more threads cannot decode faster, and too many exhaust the system's thread limit)");
}

void check_batch_size(int64_t n, const std::string& source, const std::string& field) {
  if (n < 1 || n > kMaxBatchSize)
    fail(source, field,
         "expected 1 to " + std::to_string(kMaxBatchSize) + " samples per batch, got " + std::to_string(n));
}

void check_bench_runs(int64_t n, int64_t least, const std::string& source, const std::string& field) {
  if (n < least || n > kMaxBenchRuns)
    fail(source, field,
         "expected " + std::to_string(least) + " to " + std::to_string(kMaxBenchRuns) + " runs, got " +
             std::to_string(n));
}

}  // namespace qalign::config
