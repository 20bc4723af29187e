#pragma once
// SIGTERM (what SLURM sends before preemption, and `qalign launch` when a peer fails) and SIGINT
// (a user's Ctrl-C) as a request to stop at the next step boundary, after a checkpoint, instead
// of dying mid-step. The run then exits with 128 + the signal, as a job that did not finish.
namespace qalign::train {

// Routes SIGTERM and SIGINT to the request flag; idempotent.
void install_stop_handler();
// True once either has arrived.
bool stop_requested();
// The signal that arrived (SIGTERM or SIGINT), or 0.
int stop_signal();

}  // namespace qalign::train
