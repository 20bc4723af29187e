#pragma once
// A linear layer's weight held in int8 or int4 instead of floats (weight-only quantisation):
// the product runs through LibTorch's packed kernels in bfloat16 (the activations are cast to it
// and the result back), the dtype those kernels are fast in.
#include <torch/torch.h>

namespace qalign::model {

class QuantizedWeight {
 public:
  virtual ~QuantizedWeight() = default;
  // x [..., in] -> x·Wᵀ [..., out], in x's dtype.
  virtual torch::Tensor matmul(const torch::Tensor& x) const = 0;
  // Memory the quantised weight holds, in bytes.
  virtual int64_t bytes() const = 0;
};

// What quantised_*(w) of a weight [out,in] holds, in bytes (bytes() of the result), for mode
// int8, int8dyn or int4 (`group_size` for int4).
int64_t quantized_bytes(int64_t out, int64_t in, const std::string& mode, int64_t group_size);

// Symmetric int8 per output row: scale = max|row| / 127, q = round(w / scale).
// w [out,in]; scales are kept in bfloat16, as the kernel wants.
std::shared_ptr<QuantizedWeight> quantize_int8(const torch::Tensor& w);

// The same int8 weights (scales in float32), multiplied by int8 activations quantised per call
// (fbgemm's dynamic linear): VNNI integer products instead of bfloat16 ones.
std::shared_ptr<QuantizedWeight> quantize_int8_dynamic(const torch::Tensor& w);

// Asymmetric int4 in groups of `group_size` along the input (min/max per group, 16 levels),
// packed for _weight_int4pack_mm_for_cpu, or _weight_int4pack_mm on a GPU. Needs
// in % group_size == 0 and out % 16 == 0 (on a GPU also in % 128 == 0).
std::shared_ptr<QuantizedWeight> quantize_int4(const torch::Tensor& w, int64_t group_size);

// float8 e4m3 weights with a float32 scale per output row, multiplied by activations scaled the
// same way per row through _scaled_mm (CUDA GPUs of compute capability 8.9 and above). Needs
// in and out multiples of 16.
std::shared_ptr<QuantizedWeight> quantize_fp8(const torch::Tensor& w);

}  // namespace qalign::model
