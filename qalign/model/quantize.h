#pragma once
// `--quantize int8 | int8dyn | int4 | fp8` for scoring: the language model's linear layers (q/k/v/o
// incl. the multiway copies, gate/up/down) get quantised weights at load, and with
// --quantize-vision the vision tower's and the abstractor's too; embeddings, norms, the patch
// embedding and lm_head (the level-word readout) keep their floats.
#include <string>
#include <utility>
#include <vector>

#include "qalign/model/owl2.h"

namespace qalign::model {

struct QuantizeOptions {
  std::string mode = "none";  // none | int8 | int8dyn (CPU) | int4 | fp8 (CUDA)
  int64_t group_size = 128;   // int4 only: 32 | 64 | 128
  bool vision = false;        // also the vision tower's and the abstractor's linears
};

// The mode as records and reports name it: "int8", "int4 (group 32)", "int8 + vision", ...
std::string describe(const QuantizeOptions& o);

// Fails naming --quantize or --group-size for an unknown mode, a mode the device cannot run
// (`device`: "cpu" or "cuda") or a group size other than 32, 64, 128.
void check_quantize_options(const QuantizeOptions& o, const std::string& device);

class QuantizedWeight;

// The linears a mode quantises (the language model's; with `vision` the vision tower's and the
// abstractor's too), by module path, unchecked.
std::vector<std::pair<std::string, LinearImpl*>> quantizable_linears(Owl2ForCausalLM& m, bool vision);

// The tensors scoring reads a few rows of: the embedding table (the prompt's tokens) and lm_head
// (the level readout takes five rows). A quantising load on the CPU leaves them in the
// memory-mapped checkpoint (io::LoadTarget::mappable); weight_bytes_per_mode reports their bytes.
std::vector<std::string> row_read_tensors();

// Whether `o` takes a layer of `lin`'s widths on its device (what quantized_linears checks).
bool can_quantize(const LinearImpl& lin, const QuantizeOptions& o);

// The linears that `o` quantises, by module path (model.layers.N...., and with `o.vision`
// model.vision_model... and model.visual_abstractor...; their weights are `<path>.weight`), each
// checked first: a group size that does not divide a layer's
// input width fails naming --group-size and the layer. Empty for mode none. Their weights may be
// on the meta device (a loader that quantises as it reads, qalign/io/load_target.h).
std::vector<std::pair<std::string, LinearImpl*>> quantized_linears(Owl2ForCausalLM& m, const QuantizeOptions& o);

// `w` [out,in] quantised as `o` says (deterministic: round to nearest).
std::shared_ptr<QuantizedWeight> quantize_weight(const torch::Tensor& w, const QuantizeOptions& o);

// Replaces the float weights of quantized_linears(m, o) by quantised ones (deterministic:
// round to nearest). Every layer is checked before any changes: a group size that does not
// divide a layer's input width fails naming --group-size and the layer. `mode` none: no-op.
void quantize_linears(Owl2ForCausalLM& m, const QuantizeOptions& o);

}  // namespace qalign::model
