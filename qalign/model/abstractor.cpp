#include "qalign/model/abstractor.h"

#include "qalign/base/compat.h"
#include "qalign/base/error.h"

namespace qalign::model {

namespace {
// Abstractor norms built with PyTorch's default eps, unlike ffn_ln (SPEC.md §10.3).
constexpr double kTorchDefaultLayerNormEps = 1e-5;
}  // namespace

torch::Tensor sincos_1d(int64_t dim, int64_t positions) {
  // Computed in float64 as numpy does, stored as float32.
  const auto half = dim / 2;
  const auto omega = 1.0 / torch::pow(10000.0, torch::arange(half, torch::kFloat64) / static_cast<double>(half));
  const auto angles = torch::outer(torch::arange(positions, torch::kFloat64), omega);
  return torch::cat({torch::sin(angles), torch::cos(angles)}, 1).to(torch::kFloat32);
}

torch::Tensor sincos_2d_with_cls(int64_t dim, int64_t grid) {
  const auto cols = sincos_1d(dim / 2, grid).repeat({grid, 1});           // patch r*G+c -> column c
  const auto rows = sincos_1d(dim / 2, grid).repeat_interleave(grid, 0);  // patch r*G+c -> row r
  return torch::cat({torch::zeros({1, dim}), torch::cat({cols, rows}, 1)}, 0);
}

AbstractorAttentionImpl::AbstractorAttentionImpl(const AbstractorConfig& c, const torch::TensorOptions& opts)
    : heads(c.num_attention_heads) {
  query = register_module("query", Linear(c.hidden_size, c.hidden_size, true, opts));
  key = register_module("key", Linear(c.encoder_hidden_size, c.hidden_size, true, opts));
  value = register_module("value", Linear(c.encoder_hidden_size, c.hidden_size, true, opts));
  const bool meta = opts.device().type() == torch::kMeta;
  const auto n = c.grid_size * c.grid_size + 1;
  q_pos_embed = register_buffer("q_pos_embed", meta ? torch::empty({c.num_learnable_queries, c.hidden_size}, opts)
                                                    : sincos_1d(c.hidden_size, c.num_learnable_queries).to(opts));
  k_pos_embed = register_buffer("k_pos_embed", meta ? torch::empty({n, c.hidden_size}, opts)
                                                    : sincos_2d_with_cls(c.hidden_size, c.grid_size).to(opts));
}

torch::Tensor AbstractorAttentionImpl::forward(const torch::Tensor& queries_n, const torch::Tensor& kv) {
  const int64_t B = queries_n.size(0), Q = queries_n.size(1), L = kv.size(1), D = queries_n.size(2), hd = D / heads;
  const auto pos = torch::cat({q_pos_embed, k_pos_embed}, 0).to(kv.scalar_type());  // [Q+N,D]
  if (pos.size(0) != L)
    throw Error("abstractor: " + std::to_string(L - Q) + " image tokens but k_pos_embed has " +
                std::to_string(k_pos_embed.size(0)) + " rows (grid_size does not match the vision encoder)");
  const auto q = query(queries_n + pos.narrow(0, 0, Q)).view({B, Q, heads, hd}).transpose(1, 2);
  const auto k = key(kv + pos).view({B, L, heads, hd}).transpose(1, 2);
  const auto v = value(kv).view({B, L, heads, hd}).transpose(1, 2);  // no position on values
  const auto ctx =
      compat::scaled_dot_product_attention(q, k, v, std::nullopt, false, 1.0 / std::sqrt(static_cast<double>(hd)));
  return ctx.transpose(1, 2).reshape({B, Q, D});
}

AbstractorMlpImpl::AbstractorMlpImpl(const AbstractorConfig& c, const torch::TensorOptions& opts) {
  w1 = register_module("w1", Linear(c.hidden_size, c.intermediate_size, true, opts));
  w2 = register_module("w2", Linear(c.intermediate_size, c.hidden_size, true, opts));
  w3 = register_module("w3", Linear(c.hidden_size, c.intermediate_size, true, opts));
  ffn_ln = register_module("ffn_ln", LayerNorm(c.intermediate_size, c.layer_norm_eps, opts));
}

torch::Tensor AbstractorMlpImpl::forward(const torch::Tensor& x) { return w2(ffn_ln(torch::silu(w1(x)) * w3(x))); }

AbstractorLayerImpl::AbstractorLayerImpl(const AbstractorConfig& c, const torch::TensorOptions& opts) {
  auto cross = register_module("crossattention", std::make_shared<torch::nn::Module>());
  norm1 = cross->register_module("norm1", LayerNorm(c.hidden_size, kTorchDefaultLayerNormEps, opts));
  normk = cross->register_module("normk", LayerNorm(c.encoder_hidden_size, kTorchDefaultLayerNormEps, opts));
  attention = cross->register_module("attention", AbstractorAttention(c, opts));
  auto output = cross->register_module("output", std::make_shared<torch::nn::Module>());
  out_proj = output->register_module("out_proj", Linear(c.hidden_size, c.hidden_size, true, opts));
  norm2 = output->register_module("norm2", LayerNorm(c.hidden_size, kTorchDefaultLayerNormEps, opts));
  mlp = output->register_module("mlp", AbstractorMlp(c, opts));
}

torch::Tensor AbstractorLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& image) {
  const auto xn = norm1(x);
  const auto kv = torch::cat({xn, normk(image)}, 1);  // queries attend to themselves and the image
  const auto y = xn + out_proj(attention(xn, kv));    // residual on the normalised queries
  return y + mlp(norm2(y));
}

VisualAbstractorImpl::VisualAbstractorImpl(const AbstractorConfig& c, int64_t llm_hidden,
                                           const torch::TensorOptions& opts) {
  if (c.encoder_hidden_size != c.hidden_size)
    throw Error("visual_abstractor: encoder_hidden_size must equal hidden_size (queries and image tokens share keys)");
  query_embeds = normal_parameter(*this, "query_embeds", {1, c.num_learnable_queries, c.hidden_size}, opts);
  auto encoder = register_module("encoder", std::make_shared<torch::nn::Module>());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(AbstractorLayer(c, opts));
  encoder->register_module("layers", layers);
  visual_fc = register_module("visual_fc", Linear(c.hidden_size, llm_hidden, true, opts));
  vit_eos = normal_parameter(*this, "vit_eos", {1, 1, llm_hidden}, opts);
}

torch::Tensor VisualAbstractorImpl::forward(const torch::Tensor& image) {
  auto x = query_embeds.expand({image.size(0), -1, -1});
  for (const auto& layer : *layers) x = layer->as<AbstractorLayer>()->forward(x, image);
  const auto out = visual_fc(x);  // [B,Q,E]
  return torch::cat({out, vit_eos.expand({out.size(0), 1, out.size(2)})}, 1);
}

}  // namespace qalign::model
