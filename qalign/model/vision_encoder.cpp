#include "qalign/model/vision_encoder.h"

#include "qalign/base/compat.h"

namespace qalign::model {

VisionEmbeddingsImpl::VisionEmbeddingsImpl(const VisionConfig& c, const torch::TensorOptions& opts)
    : patch(c.patch_size) {
  const int64_t n = (c.image_size / c.patch_size) * (c.image_size / c.patch_size) + 1;
  cls_token = normal_parameter(*this, "cls_token", {1, 1, c.hidden_size}, opts);
  position_embedding = normal_parameter(*this, "position_embedding", {1, n, c.hidden_size}, opts);
  auto patch_embed = register_module("patch_embed", std::make_shared<torch::nn::Module>());
  patch_weight = normal_parameter(*patch_embed, "weight", {c.hidden_size, c.num_channels, patch, patch}, opts);
  pre_layernorm = register_module("pre_layernorm", LayerNorm(c.hidden_size, c.layer_norm_eps, opts));
}

torch::Tensor VisionEmbeddingsImpl::forward(const torch::Tensor& pixels) {
  auto x = torch::conv2d(pixels, patch_weight, {}, patch);  // [B,D,S/p,S/p]
  x = x.flatten(2).transpose(1, 2);                         // [B,P,D], row-major patches
  const auto cls = cls_token.expand({x.size(0), 1, x.size(2)});
  x = torch::cat({cls, x}, 1) + position_embedding.narrow(1, 0, x.size(1) + 1);
  return pre_layernorm(x);
}

VisionAttentionImpl::VisionAttentionImpl(const VisionConfig& c, const torch::TensorOptions& opts)
    : heads(c.num_attention_heads) {
  query_key_value = register_module("query_key_value", Linear(c.hidden_size, 3 * c.hidden_size, true, opts));
  dense = register_module("dense", Linear(c.hidden_size, c.hidden_size, true, opts));
}

torch::Tensor VisionAttentionImpl::forward(const torch::Tensor& x) {
  const int64_t B = x.size(0), N = x.size(1), D = x.size(2), hd = D / heads;
  const auto qkv = query_key_value(x).view({B, N, heads, 3, hd}).permute({3, 0, 2, 1, 4});  // [3,B,H,N,hd]
  const auto ctx = compat::scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], std::nullopt, false,
                                                        1.0 / std::sqrt(static_cast<double>(hd)));
  return dense(ctx.transpose(1, 2).reshape({B, N, D}));
}

VisionMlpImpl::VisionMlpImpl(const VisionConfig& c, const torch::TensorOptions& opts) {
  fc1 = register_module("fc1", Linear(c.hidden_size, c.intermediate_size, true, opts));
  fc2 = register_module("fc2", Linear(c.intermediate_size, c.hidden_size, true, opts));
}

torch::Tensor VisionMlpImpl::forward(const torch::Tensor& x) {
  const auto h = fc1(x);
  return fc2(h * torch::sigmoid(1.702 * h));  // QuickGELU, not erf-GELU
}

VisionLayerImpl::VisionLayerImpl(const VisionConfig& c, const torch::TensorOptions& opts) {
  input_layernorm = register_module("input_layernorm", LayerNorm(c.hidden_size, c.layer_norm_eps, opts));
  self_attn = register_module("self_attn", VisionAttention(c, opts));
  post_attention_layernorm =
      register_module("post_attention_layernorm", LayerNorm(c.hidden_size, c.layer_norm_eps, opts));
  mlp = register_module("mlp", VisionMlp(c, opts));
}

torch::Tensor VisionLayerImpl::forward(const torch::Tensor& h0) {
  const auto h = h0 + self_attn(input_layernorm(h0));
  return h + mlp(post_attention_layernorm(h));
}

VisionEncoderImpl::VisionEncoderImpl(const VisionConfig& c, const torch::TensorOptions& opts) {
  embeddings = register_module("embeddings", VisionEmbeddings(c, opts));
  auto encoder = std::make_shared<torch::nn::Module>();
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(VisionLayer(c, opts));
  encoder->register_module("layers", layers);
  register_module("encoder", encoder);
  post_layernorm = register_module("post_layernorm", LayerNorm(c.hidden_size, c.layer_norm_eps, opts));
}

torch::Tensor VisionEncoderImpl::forward(const torch::Tensor& pixels) {
  auto h = call_part(
      run_part, *embeddings, [this](const torch::Tensor& x) { return embeddings(x); }, pixels);
  for (const auto& layer : *layers) {
    auto* block = layer->as<VisionLayer>();
    h = run_block ? run_block(
                        *block, [block](const torch::Tensor& x) { return block->forward(x); }, h)
                  : block->forward(h);
  }
  return call_part(
      run_part, *post_layernorm, [this](const torch::Tensor& x) { return post_layernorm(x); }, h);
}

}  // namespace qalign::model
