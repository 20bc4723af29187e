#pragma once
// The per-picture budgets as options of the commands that decode files (score, eval), named as the
// training config's keys.
#include <CLI/CLI.hpp>

#include "qalign/media_budget.h"

namespace qalign::tools {

// --max-image-file-mb and --max-image-decoded-mb, into `budget`, each 1 to kMaxMediaBudgetMb.
void add_media_budget_options(CLI::App* cmd, MediaBudget& budget);

}  // namespace qalign::tools
