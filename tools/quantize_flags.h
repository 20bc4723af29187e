#pragma once
// --quantize and --group-size, spelled the same by score, eval and bench score.
#include <CLI/CLI.hpp>

#include "qalign/model/quantize.h"

namespace qalign::tools {

void add_quantize_flags(CLI::App* cmd, model::QuantizeOptions& o);

}  // namespace qalign::tools
