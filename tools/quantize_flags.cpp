#include "tools/quantize_flags.h"

namespace qalign::tools {

void add_quantize_flags(CLI::App* cmd, model::QuantizeOptions& o) {
  cmd->add_option("--quantize", o.mode,
                  "none | int8 (per-row int8 weights) | int8dyn (int8 weights and activations, CPU) | int4 (grouped "
                  "int4 weights) | fp8 (per-row float8 weights and activations, Hopper GPU): the language model's "
                  "linear layers, quantised as they are loaded")
      ->capture_default_str();
  cmd->add_option("--group-size", o.group_size, "int4: input columns sharing a scale and zero (32 | 64 | 128)")
      ->capture_default_str();
  cmd->add_flag("--quantize-vision", o.vision,
                "with --quantize: the vision tower's and the abstractor's linear layers too (owl2-7b: 0.3 GB less "
                "in int8, 0.45 GB in int4)");
}

}  // namespace qalign::tools
