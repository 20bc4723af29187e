#pragma once
// Model FLOPs counted analytically from the config, as MFU conventions do (PaLM, appendix B):
// 2 per multiply-add of every matrix product, attention's two L×L products at full length (no
// causal saving), nothing for norms, activations, softmax or the optimizer; a training step is
// three forwards (the backward pass costs two).
#include <cstdint>

#include "qalign/model/config.h"

namespace qalign::model {

struct ForwardFlops {
  double vision = 0, abstractor = 0, language = 0, lm_head = 0;
  double total() const { return vision + abstractor + language + lm_head; }
};

// One sample: `images` pictures (or frames) and `text_tokens` text positions (the visual tokens
// are added here); the output layer runs at `logit_positions` of them (training: the supervised
// answer tokens; scoring: the last position).
ForwardFlops forward_flops(const ModelConfig& c, int64_t images, int64_t text_tokens, int64_t logit_positions);

}  // namespace qalign::model
