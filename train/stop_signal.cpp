#include "train/stop_signal.h"

#include <csignal>

namespace qalign::train {

namespace {
volatile std::sig_atomic_t g_stop = 0;
void on_signal(int signal) { g_stop = signal; }
}  // namespace

void install_stop_handler() {
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
}

bool stop_requested() { return g_stop != 0; }
int stop_signal() { return g_stop; }

}  // namespace qalign::train
