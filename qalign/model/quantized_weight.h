#pragma once
// A linear layer's weight held in int8 or int4 instead of floats (weight-only quantisation):
// the product runs through LibTorch's packed CPU kernels in bfloat16 (the activations are cast to
// it and the result back), the dtype those kernels are fast in.
#include <torch/torch.h>

namespace qalign::model {

class QuantizedWeight {
 public:
  virtual ~QuantizedWeight() = default;
  // x [..., in] -> x·Wᵀ [..., out], in x's dtype.
  virtual torch::Tensor matmul(const torch::Tensor& x) const = 0;
};

// Symmetric int8 per output row: scale = max|row| / 127, q = round(w / scale).
// w [out,in]; scales are kept in bfloat16, as the kernel wants.
std::shared_ptr<QuantizedWeight> quantize_int8(const torch::Tensor& w);

// Asymmetric int4 in groups of `group_size` along the input (min/max per group, 16 levels),
// packed for _weight_int4pack_mm_for_cpu. Needs in % group_size == 0 and out % 16 == 0.
std::shared_ptr<QuantizedWeight> quantize_int4(const torch::Tensor& w, int64_t group_size);

}  // namespace qalign::model
