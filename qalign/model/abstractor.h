#pragma once
// The visual abstractor (`model.visual_abstractor`, SPEC.md §1.3): Q learned queries
// cross-attend to the N ViT tokens; visual_fc lifts them to the LLM width; vit_eos is appended.
// Shapes: B images, Q queries, N ViT tokens, D abstractor width, E LLM width.
#include <torch/torch.h>

#include "qalign/model/config.h"
#include "qalign/model/layers.h"

namespace qalign::model {

// Fixed sin-cos tables (MAE convention). The checkpoint stores them as persistent buffers and
// the authors load them from there; these are the values for a fresh model.
torch::Tensor sincos_1d(int64_t dim, int64_t positions);      // [positions, dim]
torch::Tensor sincos_2d_with_cls(int64_t dim, int64_t grid);  // [1 + grid², dim]: zeros, then (column, row)

class AbstractorAttentionImpl : public torch::nn::Module {
 public:
  AbstractorAttentionImpl(const AbstractorConfig& c, const torch::TensorOptions& opts);
  // queries_n [B,Q,D] (normalised), kv [B,Q+N,D] (normalised queries then image tokens)
  torch::Tensor forward(const torch::Tensor& queries_n, const torch::Tensor& kv);  // -> [B,Q,D]
  Linear query{nullptr}, key{nullptr}, value{nullptr};
  torch::Tensor q_pos_embed, k_pos_embed;  // buffers [Q,D], [N,D]
  int64_t heads;
};
TORCH_MODULE(AbstractorAttention);

class AbstractorMlpImpl : public torch::nn::Module {
 public:
  AbstractorMlpImpl(const AbstractorConfig& c, const torch::TensorOptions& opts);
  torch::Tensor forward(const torch::Tensor& x);  // w2(ffn_ln(silu(w1 x) ⊙ w3 x))
  Linear w1{nullptr}, w2{nullptr}, w3{nullptr};
  LayerNorm ffn_ln{nullptr};
};
TORCH_MODULE(AbstractorMlp);

class AbstractorLayerImpl : public torch::nn::Module {
 public:
  AbstractorLayerImpl(const AbstractorConfig& c, const torch::TensorOptions& opts);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& image);  // [B,Q,D], [B,N,D] -> [B,Q,D]
  // Registered under crossattention.{norm1, normk, attention, output.{out_proj, norm2, mlp}}.
  LayerNorm norm1{nullptr}, normk{nullptr}, norm2{nullptr};
  AbstractorAttention attention{nullptr};
  Linear out_proj{nullptr};
  AbstractorMlp mlp{nullptr};
};
TORCH_MODULE(AbstractorLayer);

class VisualAbstractorImpl : public torch::nn::Module {
 public:
  VisualAbstractorImpl(const AbstractorConfig& c, int64_t llm_hidden, const torch::TensorOptions& opts);
  torch::Tensor forward(const torch::Tensor& image);  // [B,N,D] -> [B,Q+1,E]
  torch::Tensor query_embeds, vit_eos;                // [1,Q,D], [1,1,E]
  torch::nn::ModuleList layers;                       // registered as encoder.layers
  Linear visual_fc{nullptr};
};
TORCH_MODULE(VisualAbstractor);

}  // namespace qalign::model
