#include "train/stop_signal.h"

#include <csignal>

namespace qalign::train {

namespace {
volatile std::sig_atomic_t g_stop = 0;
void on_sigterm(int) { g_stop = 1; }
}  // namespace

void install_stop_handler() { std::signal(SIGTERM, on_sigterm); }

bool stop_requested() { return g_stop != 0; }

}  // namespace qalign::train
