#include "qalign/scoring/progress.h"

#include <unistd.h>

#include <cstdio>

#include "qalign/base/log.h"

namespace qalign::scoring {

Progress::Progress(bool enabled) : enabled_(enabled), terminal_(::isatty(2) != 0) {}

void Progress::update(int64_t done) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  const auto every = terminal_ ? std::chrono::milliseconds(200) : std::chrono::milliseconds(30000);
  if (now - last_draw_ < every) return;
  last_draw_ = now;
  draw(done, false);
}

void Progress::finish(int64_t done) {
  if (enabled_ && terminal_) draw(done, true);
}

void Progress::draw(int64_t done, bool last) {
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = s > 0 ? done / s : 0;
  const int64_t total = total_.load();
  std::string text;
  if (total >= 0) {
    const int width = 30;
    const int filled = total > 0 ? static_cast<int>(width * std::min(done, total) / total) : width;
    text = "[" + std::string(filled, '#') + std::string(width - filled, '.') + "] " + std::to_string(done) + "/" +
           std::to_string(total);
  } else {
    text = std::to_string(done) + (total == kCounting ? " done (counting the inputs)" : " done");
  }
  char tail[96];
  std::snprintf(tail, sizeof tail, " %.1f items/s, elapsed %s", rate, log::clock_text(s).c_str());
  text += tail;
  if (total >= 0 && rate > 0) text += ", ETA " + log::clock_text((total - done) / rate);
  if (terminal_) {
    std::fprintf(stderr, "\r%s  %s", text.c_str(), last ? "\n" : "");
    std::fflush(stderr);
  } else {
    log::info(text);
  }
}

std::string summary_line(int64_t scored, int64_t failed, double wall_s, const StageTimes& t, int threads) {
  char buf[320];
  std::snprintf(buf, sizeof buf,
                "scored %lld, failed %lld in %.1f s: %.1f items/s | decode %.1f s, preprocess %.1f s (on %d threads), "
                "model %.1f s, waiting for input %.1f s, writing %.1f s",
                static_cast<long long>(scored), static_cast<long long>(failed), wall_s,
                wall_s > 0 ? (scored + failed) / wall_s : 0.0, t.decode, t.preprocess, threads, t.model, t.wait,
                t.write);
  return buf;
}

}  // namespace qalign::scoring
