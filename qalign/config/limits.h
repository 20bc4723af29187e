#pragma once
// Bounds on counts a user sets that become threads (the training loader's
// dataloader_num_workers, qalign score's --workers) or batches and repeats of a benchmark.
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

// A YAML training config is a few kB; yaml-cpp builds ~200 bytes of nodes per byte of a list, so
// the file's size is checked before it is parsed (a 25 MB list would need 5 GB).
constexpr uint64_t kMaxYamlConfigBytes = 1 << 20;

// Samples in one batch a benchmark builds at once: each picture is 3 x 448 x 448 values and its
// activations several times that, so 4096 already asks for tens of GB; more cannot be run.
constexpr int64_t kMaxBatchSize = 4096;

// Fails "SOURCE: FIELD: expected 1 to 4096 samples per batch, got N" unless 1 <= n <= 4096.
void check_batch_size(int64_t n, const std::string& source, const std::string& field);

// Timed or untimed runs of a benchmark: a median of more than 1000 says nothing more, and a
// mistyped count would run for days.
constexpr int64_t kMaxBenchRuns = 1000;

// Fails "SOURCE: FIELD: expected `least` to 1000 runs, got N".
void check_bench_runs(int64_t n, int64_t least, const std::string& source, const std::string& field);

}  // namespace qalign::config
