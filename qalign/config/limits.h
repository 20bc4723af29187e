#pragma once
// Bounds on counts a user sets that become threads (the training loader's
// dataloader_num_workers, qalign score's --workers).
#include <cstdint>
#include <string>

namespace qalign::config {

// Fixed rather than per machine, so a recipe valid on one host is valid on every host. Each
// worker decodes one picture at a time for a model that takes a batch per step, so more than a
// few per core cannot help; 256 covers the largest hosts' cores and stays far below the per-user
// thread limits (ulimit -u) at which creating a thread fails with only "Resource temporarily
// unavailable".
constexpr int64_t kMaxWorkerThreads = 256;

// Fails "SOURCE: FIELD: expected 0 to 256 worker threads, got N (...)" unless 0 <= n <= 256.
void check_worker_count(int64_t n, const std::string& source, const std::string& field);

}  // namespace qalign::config
