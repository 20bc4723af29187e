#pragma once
// `--quantize int8 | int4` for scoring: the language model's linear layers (q/k/v/o incl. the
// multiway copies, gate/up/down) get weight-only quantised weights at load; embeddings, norms,
// the vision tower, the abstractor and lm_head (the level-word readout) keep their floats.
#include <string>

#include "qalign/model/owl2.h"

namespace qalign::model {

struct QuantizeOptions {
  std::string mode = "none";  // none | int8 | int4 (fp8 is named but needs a Hopper GPU)
  int64_t group_size = 128;   // int4 only: 32 | 64 | 128
};

// Fails naming --quantize or --group-size for an unknown mode, a mode the device cannot run
// (`device`: "cpu" or "cuda") or a group size other than 32, 64, 128.
void check_quantize_options(const QuantizeOptions& o, const std::string& device);

// Replaces the float weights of the decoder layers' linears by quantised ones (deterministic:
// round to nearest). Every layer is checked before any changes: a group size that does not
// divide a layer's input width fails naming --group-size and the layer. `mode` none: no-op.
void quantize_linears(Owl2ForCausalLM& m, const QuantizeOptions& o);

}  // namespace qalign::model
