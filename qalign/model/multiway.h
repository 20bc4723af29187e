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
  // only one modality, which then takes the fast path.
  torch::Tensor text, visual;
  bool all_text = true, all_visual = false;
  static ModalityRoute from_indicators(const torch::Tensor& modality);  // [B,L], 0 text / 1 visual
};

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
    const auto flat = x.reshape({-1, x.size(-1)});
    const auto y_text = copies[0]->forward(flat.index_select(0, r.text));
    const auto y_vis = copies[1]->forward(flat.index_select(0, r.visual));
    auto y = torch::empty({flat.size(0), y_text.size(-1)}, y_text.options());
    y = y.index_copy(0, r.text, y_text).index_copy(0, r.visual, y_vis);
    auto shape = x.sizes().vec();
    shape.back() = y.size(-1);
    return y.view(shape);
  }
  torch::nn::ModuleList multiway;
  M copies[2] = {nullptr, nullptr};
};

}  // namespace qalign::model
