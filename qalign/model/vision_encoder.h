#pragma once
// The CLIP-style ViT of mPLUG-Owl2 (`model.vision_model`, SPEC.md §1.2).
// Shapes: B images, P = (S/patch)² patches, N = P + 1 tokens (CLS first), D = hidden size.
#include <torch/torch.h>

#include "qalign/model/config.h"
#include "qalign/model/layers.h"

namespace qalign::model {

class VisionEmbeddingsImpl : public torch::nn::Module {
 public:
  VisionEmbeddingsImpl(const VisionConfig& c, const torch::TensorOptions& opts);
  torch::Tensor forward(const torch::Tensor& pixels);         // [B,3,S,S] -> [B,N,D]
  torch::Tensor cls_token, position_embedding, patch_weight;  // patch_embed.weight: [D,3,p,p], no bias
  LayerNorm pre_layernorm{nullptr};
  int64_t patch;
};
TORCH_MODULE(VisionEmbeddings);

// Self-attention with one fused qkv projection whose outputs are interleaved per head:
// [H][q,k,v][head_dim].
class VisionAttentionImpl : public torch::nn::Module {
 public:
  VisionAttentionImpl(const VisionConfig& c, const torch::TensorOptions& opts);
  torch::Tensor forward(const torch::Tensor& x);  // [B,N,D] -> [B,N,D]
  Linear query_key_value{nullptr}, dense{nullptr};
  int64_t heads;
};
TORCH_MODULE(VisionAttention);

class VisionMlpImpl : public torch::nn::Module {
 public:
  VisionMlpImpl(const VisionConfig& c, const torch::TensorOptions& opts);
  torch::Tensor forward(const torch::Tensor& x);  // fc2(quick_gelu(fc1(x)))
  Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(VisionMlp);

class VisionLayerImpl : public torch::nn::Module {
 public:
  VisionLayerImpl(const VisionConfig& c, const torch::TensorOptions& opts);
  torch::Tensor forward(const torch::Tensor& h);  // pre-norm residual block
  LayerNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  VisionAttention self_attn{nullptr};
  VisionMlp mlp{nullptr};
};
TORCH_MODULE(VisionLayer);

class VisionEncoderImpl : public torch::nn::Module {
 public:
  VisionEncoderImpl(const VisionConfig& c, const torch::TensorOptions& opts);
  // [B,3,S,S] -> post-layernormed last hidden state [B,N,D], CLS included.
  torch::Tensor forward(const torch::Tensor& pixels);
  VisionEmbeddings embeddings{nullptr};
  torch::nn::ModuleList layers;  // registered as encoder.layers
  LayerNorm post_layernorm{nullptr};
  BlockRunner run_block;  // how each encoder layer is called (see layers.h)
  BlockRunner run_part;   // how the embeddings and the final norm are called
};
TORCH_MODULE(VisionEncoder);

}  // namespace qalign::model
