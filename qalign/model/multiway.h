#pragma once
// The modality-adaptive module (SPEC.md §1.4): some LLM sub-modules hold two copies,
// `multiway.0` for text tokens and `multiway.1` for visual tokens, and each token goes through
// the copy of its modality. Routing is computed once per forward (ModalityRoute) and shared by
// every layer, so no layer rebuilds masks or indices.
#include <torch/torch.h>

#include "qalign/model/layers.h"

namespace qalign::model {

struct ModalityRoute {
  // Flat row indices (into B·L) of text and of visual tokens; undefined when the batch has
  // only one modality, which then takes the fast path. `order` (text rows, then visual rows)
  // and its inverse permute the rows into the two groups and back.
  torch::Tensor text, visual, order, inverse;
  bool all_text = true, all_visual = false;
  static ModalityRoute from_indicators(const torch::Tensor& modality);  // [B,L], 0 text / 1 visual
};

// x.index_select(0, order) whose backward is the gather by `inverse`: index_select's own backward
// scatters with index_add_, which on the CPU cost as much as every matmul of a training step.
torch::Tensor permute_rows(const torch::Tensor& x, const torch::Tensor& order, const torch::Tensor& inverse);

// y[t] = copy_{modality(t)}(x[t]) for a per-token module (Linear, RMSNorm).
template <typename M>
class MultiwayImpl : public torch::nn::Module {
 public:
  MultiwayImpl(M text, M visual) {
    multiway = register_module("multiway", torch::nn::ModuleList());
    multiway->push_back(text);
    multiway->push_back(visual);
    copies[0] = text;
    copies[1] = visual;
  }
  torch::Tensor forward(const torch::Tensor& x, const ModalityRoute& r) {  // [B,L,C] -> [B,L,C']
    if (r.all_text) return copies[0]->forward(x);
    if (r.all_visual) return copies[1]->forward(x);
    // Rows grouped by modality, each group through its copy, then back in place: two gathers
    // forward and two backward (split and cat are views and copies), no scatter.
    const auto grouped = permute_rows(x.reshape({-1, x.size(-1)}), r.order, r.inverse)
                             .split_with_sizes({r.text.size(0), r.visual.size(0)});
    const auto y =
        permute_rows(torch::cat({copies[0]->forward(grouped[0]), copies[1]->forward(grouped[1])}), r.inverse, r.order);
    auto shape = x.sizes().vec();
    shape.back() = y.size(-1);
    return y.view(shape);
  }
  torch::nn::ModuleList multiway;
  M copies[2] = {nullptr, nullptr};
};

}  // namespace qalign::model
