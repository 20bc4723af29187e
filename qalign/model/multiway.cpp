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
  }
  return r;
}

}  // namespace qalign::model
