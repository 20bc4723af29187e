#pragma once
// One line per event: "2026-11-26 11:00:00.123 INFO  message", on stderr.
#include <sstream>
#include <string>

namespace qalign::log {

enum class Level { Debug = 0, Info = 1, Warn = 2, Error = 3, Quiet = 4 };

void set_level(Level level);
Level level();
void write(Level level, const std::string& message);

template <typename... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

template <typename... Args>
void debug(const Args&... a) {
  if (level() <= Level::Debug) write(Level::Debug, cat(a...));
}
template <typename... Args>
void info(const Args&... a) {
  if (level() <= Level::Info) write(Level::Info, cat(a...));
}
template <typename... Args>
void warn(const Args&... a) {
  if (level() <= Level::Warn) write(Level::Warn, cat(a...));
}
template <typename... Args>
void error(const Args&... a) {
  write(Level::Error, cat(a...));
}

}  // namespace qalign::log
