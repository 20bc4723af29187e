#pragma once
// One line per event: "2026-11-26 11:00:00.123 INFO  message", on stderr.
#include <sstream>
#include <string>

namespace qalign::log {

enum class Level { Debug = 0, Info = 1, Warn = 2, Error = 3, Quiet = 4 };

void set_level(Level level);
Level level();
void write(Level level, const std::string& message);
// Whether the log goes to a terminal (where a progress line can be redrawn in place).
bool to_terminal();
// A progress line (step, rate, ETA): on a terminal redrawn in place under the log's other lines,
// which print above it; elsewhere (a batch system's log file) an ordinary info line. Keep it
// shorter than a terminal's width.
void status(const std::string& text);
// Ends the progress line on a terminal, so what follows starts on a line of its own.
void end_status();
// "1:02:03" for a progress line's elapsed time or ETA; negative seconds read as zero.
std::string clock_text(double seconds);

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
