#include "qalign/base/log.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <string>

namespace qalign::log {

namespace {
std::atomic<Level> g_level{Level::Info};
std::mutex g_mutex;
std::string g_status;  // the progress line shown on the terminal, "" when none
const char* name(Level l) {
  switch (l) {
    case Level::Debug:
      return "DEBUG";
    case Level::Info:
      return "INFO ";
    case Level::Warn:
      return "WARN ";
    default:
      return "ERROR";
  }
}
std::string stamped(Level l, const std::string& message) {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const int ms =
      static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000);
  std::tm tm{};
  localtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
  char head[48];
  std::snprintf(head, sizeof head, "%s.%03d %s ", stamp, ms, name(l));
  return head + message;
}

}  // namespace

bool to_terminal() {
  static const bool is_tty = ::isatty(2) != 0;
  return is_tty;
}

void set_level(Level l) { g_level = l; }
Level level() { return g_level; }

void write(Level l, const std::string& message) {
  const std::string line = stamped(l, message);
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_status.empty()) {
    std::fprintf(stderr, "%s\n", line.c_str());
  } else {  // print above the progress line, then draw it again
    std::fprintf(stderr, "\r\033[K%s\n%s", line.c_str(), g_status.c_str());
  }
  std::fflush(stderr);
}

void status(const std::string& text) {
  if (!to_terminal()) {
    info(text);
    return;
  }
  std::lock_guard<std::mutex> lock(g_mutex);
  g_status = text;
  std::fprintf(stderr, "\r\033[K%s", text.c_str());
  std::fflush(stderr);
}

void end_status() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_status.empty()) return;
  g_status.clear();
  std::fprintf(stderr, "\n");
  std::fflush(stderr);
}

std::string clock_text(double seconds) {
  const auto t = static_cast<long long>(std::max(0.0, seconds) + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", t / 3600, t / 60 % 60, t % 60);
  return buf;
}

}  // namespace qalign::log
