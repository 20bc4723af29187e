#include "qalign/model/llama.h"

#include "qalign/base/compat.h"

namespace qalign::model {

Rotary Rotary::make(int64_t length, int64_t head_dim, double theta, torch::Dtype dtype, torch::Device device) {
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  const auto inv_freq = 1.0 / torch::pow(theta, torch::arange(0, head_dim, 2, f32) / static_cast<double>(head_dim));
  const auto freqs = torch::outer(torch::arange(length, f32), inv_freq);  // [L,hd/2]
  const auto emb = torch::cat({freqs, freqs}, -1);                        // [L,hd]
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

torch::Tensor apply_rotary(const torch::Tensor& x, const Rotary& r) {
  const auto half = x.size(-1) / 2;
  const auto rotated = torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return x * r.cos + rotated * r.sin;
}

LlamaAttentionImpl::LlamaAttentionImpl(const ModelConfig& c, const torch::TensorOptions& opts)
    : heads(c.num_attention_heads), kv_heads(c.num_key_value_heads), head_dim(c.head_dim()) {
  const int64_t E = c.hidden_size, kv = kv_heads * head_dim;
  q_proj = register_module("q_proj", Linear(E, heads * head_dim, false, opts));
  k_proj = register_module("k_proj",
                           std::make_shared<MultiwayLinear>(Linear(E, kv, false, opts), Linear(E, kv, false, opts)));
  v_proj = register_module("v_proj",
                           std::make_shared<MultiwayLinear>(Linear(E, kv, false, opts), Linear(E, kv, false, opts)));
  o_proj = register_module("o_proj", Linear(heads * head_dim, E, false, opts));
}

torch::Tensor LlamaAttentionImpl::forward(const torch::Tensor& h, const DecoderContext& ctx) {
  const int64_t B = h.size(0), L = h.size(1);
  auto q = q_proj(h).view({B, L, heads, head_dim}).transpose(1, 2);                         // [B,H,L,hd]
  auto k = k_proj->forward(h, ctx.route).view({B, L, kv_heads, head_dim}).transpose(1, 2);  // [B,Hkv,L,hd]
  const auto v = v_proj->forward(h, ctx.route).view({B, L, kv_heads, head_dim}).transpose(1, 2);
  q = apply_rotary(q, ctx.rotary);
  k = apply_rotary(k, ctx.rotary);
  const auto out = compat::scaled_dot_product_attention(q, k, v, ctx.mask, !ctx.mask.has_value(),
                                                        1.0 / std::sqrt(static_cast<double>(head_dim)));
  return o_proj(out.transpose(1, 2).reshape({B, L, heads * head_dim}));
}

LlamaMlpImpl::LlamaMlpImpl(const ModelConfig& c, const torch::TensorOptions& opts) {
  gate_proj = register_module("gate_proj", Linear(c.hidden_size, c.intermediate_size, false, opts));
  up_proj = register_module("up_proj", Linear(c.hidden_size, c.intermediate_size, false, opts));
  down_proj = register_module("down_proj", Linear(c.intermediate_size, c.hidden_size, false, opts));
}

LlamaDecoderLayerImpl::LlamaDecoderLayerImpl(const ModelConfig& c, const torch::TensorOptions& opts) {
  auto norm = [&] { return RMSNorm(c.hidden_size, c.rms_norm_eps, opts); };
  self_attn = register_module("self_attn", LlamaAttention(c, opts));
  mlp = register_module("mlp", LlamaMlp(c, opts));
  input_layernorm = register_module("input_layernorm", std::make_shared<MultiwayRMSNorm>(norm(), norm()));
  post_attention_layernorm =
      register_module("post_attention_layernorm", std::make_shared<MultiwayRMSNorm>(norm(), norm()));
}

torch::Tensor LlamaDecoderLayerImpl::forward(const torch::Tensor& h0, const DecoderContext& ctx) {
  const auto h = h0 + self_attn(input_layernorm->forward(h0, ctx.route), ctx);
  return h + mlp(post_attention_layernorm->forward(h, ctx.route));
}

bool has_inner_padding(const torch::Tensor& attention_mask) {
  const int64_t L = attention_mask.size(1);
  if (L < 2) return false;
  const auto real = attention_mask.to(torch::kBool);
  return (real.narrow(1, 1, L - 1) & ~real.narrow(1, 0, L - 1)).any().item<bool>();
}

std::optional<torch::Tensor> causal_padding_mask(const torch::Tensor& attention_mask,
                                                 std::optional<bool> inner_padding) {
  if (!attention_mask.defined()) return std::nullopt;
  if (!(inner_padding ? *inner_padding : has_inner_padding(attention_mask))) return std::nullopt;
  const int64_t L = attention_mask.size(1);
  const auto causal = torch::ones({L, L}, attention_mask.options().dtype(torch::kBool)).tril();
  return causal.unsqueeze(0).unsqueeze(0) & attention_mask.to(torch::kBool).view({-1, 1, 1, L});
}

}  // namespace qalign::model
