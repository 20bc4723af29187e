#pragma once
// SIGTERM (what SLURM sends before preemption, and `qalign launch` when a peer fails) as a
// request to stop at the next step boundary, after a checkpoint, instead of dying mid-step.
namespace qalign::train {

// Routes SIGTERM to the request flag; idempotent.
void install_stop_handler();
// True once SIGTERM has arrived.
bool stop_requested();

}  // namespace qalign::train
