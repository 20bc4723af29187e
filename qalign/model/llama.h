#pragma once
// LLaMA-2 decoder layers with the modality-adaptive module (SPEC.md §1.4).
// Shapes: B batch, L sequence, E hidden, H query heads, Hkv key/value heads, hd head dim.
#include <torch/torch.h>

#include <optional>

#include "qalign/model/config.h"
#include "qalign/model/layers.h"
#include "qalign/model/multiway.h"

namespace qalign::model {

// Rotary tables for positions 0..L-1, rotate-half layout, computed in float32 as HF does.
struct Rotary {
  torch::Tensor cos, sin;  // [L,hd] in the activation dtype
  static Rotary make(int64_t length, int64_t head_dim, double theta, torch::Dtype dtype, torch::Device device);
};
torch::Tensor apply_rotary(const torch::Tensor& x, const Rotary& r);  // x [B,H,L,hd]

// What every layer of one forward shares.
struct DecoderContext {
  ModalityRoute route;
  Rotary rotary;
  std::optional<torch::Tensor> mask;  // [B,1,L,L] bool (true = attend); none = plain causal
};

using MultiwayLinear = MultiwayImpl<Linear>;
using MultiwayRMSNorm = MultiwayImpl<RMSNorm>;

class LlamaAttentionImpl : public torch::nn::Module {
 public:
  LlamaAttentionImpl(const ModelConfig& c, const torch::TensorOptions& opts);
  torch::Tensor forward(const torch::Tensor& h, const DecoderContext& ctx);  // [B,L,E] -> [B,L,E]
  Linear q_proj{nullptr}, o_proj{nullptr};
  std::shared_ptr<MultiwayLinear> k_proj, v_proj;
  int64_t heads, kv_heads, head_dim;
};
TORCH_MODULE(LlamaAttention);

class LlamaMlpImpl : public torch::nn::Module {
 public:
  LlamaMlpImpl(const ModelConfig& c, const torch::TensorOptions& opts);
  torch::Tensor forward(const torch::Tensor& x) { return down_proj(torch::silu(gate_proj(x)) * up_proj(x)); }
  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(LlamaMlp);

class LlamaDecoderLayerImpl : public torch::nn::Module {
 public:
  LlamaDecoderLayerImpl(const ModelConfig& c, const torch::TensorOptions& opts);
  torch::Tensor forward(const torch::Tensor& h, const DecoderContext& ctx);  // pre-norm residual block
  std::shared_ptr<MultiwayRMSNorm> input_layernorm, post_attention_layernorm;
  LlamaAttention self_attn{nullptr};
  LlamaMlp mlp{nullptr};
};
TORCH_MODULE(LlamaDecoderLayer);

// Whether some row of the mask [B,L] has a padded position before a real one. Trailing padding
// needs no key mask under causal attention (a real query never sees a later key), so
// right-padded batches keep SDPA's fused causal kernels; only their padded rows differ, and no
// loss or readout looks at those.
bool has_inner_padding(const torch::Tensor& attention_mask);

// Causal mask with key padding: [B,1,L,L], or none when the causal kernel alone is exact for
// the real positions. `inner_padding`: has_inner_padding(mask), when the caller knows it (else
// it is read from the mask).
std::optional<torch::Tensor> causal_padding_mask(const torch::Tensor& attention_mask,
                                                 std::optional<bool> inner_padding = std::nullopt);  // [B,L] bool

}  // namespace qalign::model
