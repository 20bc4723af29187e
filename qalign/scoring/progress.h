#pragma once
// What a long scoring run says while it works and when it ends: a progress bar on stderr (redrawn
// in place on a terminal; on a batch system's log, a line every 30 s) with items/s and an ETA once
// the total is counted, and a closing summary with the time of each stage.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace qalign::scoring {

class Progress {
 public:
  explicit Progress(bool enabled);
  // The items this run has to do; may come later than the first update (counted on a thread).
  void set_total(int64_t total) { total_.store(total); }
  // There will be no total (the inputs can be read once only): the bar shows the count alone.
  void no_total() { total_.store(kNoTotal); }
  void update(int64_t done);
  void finish(int64_t done);

 private:
  void draw(int64_t done, bool last);
  const bool enabled_, terminal_;
  static constexpr int64_t kCounting = -1, kNoTotal = -2;
  std::atomic<int64_t> total_{kCounting};
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), last_draw_ = start_;
};

// Seconds per stage. decode and preprocess are summed over the worker threads; wait is the time
// the model thread stood idle for input (near zero when decoding keeps up with the model).
struct StageTimes {
  double decode = 0, preprocess = 0, model = 0, wait = 0, write = 0;
};

// "scored 2000, failed 3 in 12.3 s: 162.6 items/s | decode 4.1 s, preprocess 6.0 s (on 2 threads),
// model 11.2 s, waiting for input 0.3 s, writing 0.1 s"
std::string summary_line(int64_t scored, int64_t failed, double wall_s, const StageTimes& t, int threads);

}  // namespace qalign::scoring
