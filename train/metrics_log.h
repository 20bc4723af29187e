#pragma once
// What a run reports: every logging_steps a line on the log with the time left (on a terminal one
// progress line redrawn in place: step, loss, samples/s, ETA, the last held-out SRCC), and the
// same numbers as one JSON object per line in output_dir/metrics.jsonl.
#include <chrono>
#include <cstdint>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "qalign/base/log.h"
#include "qalign/metrics.h"

namespace qalign::train {

struct StepMetrics {
  int64_t step = 0;
  double epoch = 0;      // fractional: optimizer steps / steps per epoch
  double loss = 0;       // mean over the logged steps (each the mean over its micro-batches)
  double grad_norm = 0;  // of the last step, before clipping
  double lr = 0;         // the last step's learning rate
  double samples_per_s = 0, tokens_per_s = 0, ms_per_step = 0;
  // Of ms_per_step, the time this rank's training thread waited for the loader: near 0 when
  // input keeps up with the model.
  double input_wait_ms_per_step = 0;
  double peak_memory_mib = 0;
  int64_t nonfinite_steps = 0;  // steps skipped so far
  int64_t skipped_samples = 0;  // unreadable samples skipped so far
  // Per rank: {"rank", "device", "peak_allocated", "peak_reserved"} in bytes (the CUDA caching
  // allocator's peaks; the peak resident set on the CPU).
  nlohmann::json memory;
  // Once, on the first line of a run: per rank, the bytes of "parameters", "gradients",
  // "masters" and "optimizer" state counted from the tensors after the run's first step.
  nlohmann::json memory_report;
};

class MetricsLog {
 public:
  // Opens output_dir/metrics.jsonl. A fresh run (resume_step < 0) empties it; a resumed one
  // keeps the entries up to resume_step and drops any an interrupted run wrote after it.
  MetricsLog(const std::string& output_dir, int64_t resume_step);
  ~MetricsLog() { log::end_status(); }  // a stopped or failed run leaves the terminal on a fresh line
  void write(const StepMetrics& m, int64_t total_steps);
  // An evaluation: one line per dataset on the log; one object with eval_<dataset>_<metric> keys.
  void write_eval(int64_t step, double epoch, const std::map<std::string, metrics::Agreement>& results);

 private:
  std::string path_;
  std::ofstream out_;
  // For the ETA: the steps this process has run and how long they took.
  int64_t first_step_ = 0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::string last_eval_;  // " | held-out SRCC 0.7123 (step 250)" once evaluated
};

}  // namespace qalign::train
