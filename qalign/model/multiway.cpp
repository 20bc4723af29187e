#include "qalign/model/multiway.h"

namespace qalign::model {

ModalityRoute ModalityRoute::from_indicators(const torch::Tensor& modality) {
  ModalityRoute r;
  const auto flat = modality.reshape({-1});
  const auto is_visual = flat == 1;
  const int64_t n_visual = is_visual.sum().item<int64_t>();
  r.all_text = n_visual == 0;
  r.all_visual = n_visual == flat.numel();
  if (!r.all_text && !r.all_visual) {
    r.visual = torch::nonzero(is_visual).squeeze(1);
    r.text = torch::nonzero(is_visual.logical_not()).squeeze(1);
    r.order = torch::cat({r.text, r.visual});
    r.inverse = torch::empty_like(r.order).index_put_({r.order}, torch::arange(r.order.numel(), r.order.options()));
  }
  return r;
}

namespace {

struct PermuteRows : torch::autograd::Function<PermuteRows> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& order, const torch::Tensor& inverse) {
    ctx->saved_data["inverse"] = inverse;
    return x.index_select(0, order);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    return {grad[0].index_select(0, ctx->saved_data["inverse"].toTensor()), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor permute_rows(const torch::Tensor& x, const torch::Tensor& order, const torch::Tensor& inverse) {
  return PermuteRows::apply(x, order, inverse);
}

}  // namespace qalign::model
