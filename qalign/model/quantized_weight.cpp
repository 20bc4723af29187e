#include "qalign/model/quantized_weight.h"

namespace qalign::model {

namespace {

// The packed kernels take 2-D bfloat16 activations contiguous in their last dimension: with
// float32 ones they fall back to a scalar loop (35-80x slower than a float32 linear, measured).
torch::Tensor as_rows(const torch::Tensor& x) { return x.reshape({-1, x.size(-1)}).to(torch::kBFloat16).contiguous(); }

torch::Tensor like_input(const torch::Tensor& y, const torch::Tensor& x) {
  auto shape = x.sizes().vec();
  shape.back() = y.size(-1);
  return y.view(shape).to(x.scalar_type());
}

class Int8Weight : public QuantizedWeight {
 public:
  Int8Weight(torch::Tensor q, torch::Tensor scales) : q_(std::move(q)), scales_(std::move(scales)) {}
  torch::Tensor matmul(const torch::Tensor& x) const override {
    return like_input(at::_weight_int8pack_mm(as_rows(x), q_, scales_), x);
  }

 private:
  torch::Tensor q_, scales_;  // [out,in] int8, [out] bfloat16
};

class Int4Weight : public QuantizedWeight {
 public:
  Int4Weight(torch::Tensor packed, int64_t group_size, torch::Tensor scales_and_zeros)
      : packed_(std::move(packed)), group_size_(group_size), scales_and_zeros_(std::move(scales_and_zeros)) {}
  torch::Tensor matmul(const torch::Tensor& x) const override {
    return like_input(at::_weight_int4pack_mm_for_cpu(as_rows(x), packed_, group_size_, scales_and_zeros_), x);
  }

 private:
  torch::Tensor packed_;
  int64_t group_size_;
  torch::Tensor scales_and_zeros_;  // [in/group, out, 2] bfloat16
};

}  // namespace

std::shared_ptr<QuantizedWeight> quantize_int8(const torch::Tensor& w) {
  const auto dtype = torch::kBFloat16;
  torch::NoGradGuard g;
  const auto w32 = w.to(torch::kFloat32);
  // An all-zero row keeps a positive scale (its codes are all 0).
  const auto scales = (w32.abs().amax(1) / 127.0).clamp_min(1e-12).to(dtype);
  const auto q = (w32 / scales.to(torch::kFloat32).unsqueeze(1)).round().clamp(-127, 127).to(torch::kInt8);
  return std::make_shared<Int8Weight>(q.contiguous(), scales.contiguous());
}

std::shared_ptr<QuantizedWeight> quantize_int4(const torch::Tensor& w, int64_t group_size) {
  const auto dtype = torch::kBFloat16;
  torch::NoGradGuard g;
  const int64_t out = w.size(0), in = w.size(1);
  const auto groups = w.to(torch::kFloat32).reshape({-1, group_size});
  const auto lo = groups.amin(1, true), hi = groups.amax(1, true);
  const auto scales = ((hi - lo).clamp_min(1e-6) / 15.0).to(dtype).to(torch::kFloat32);
  // The kernel reads w = (q - 8)·scale + zero, so zero is the group's value at code 8.
  const auto zeros = (lo + scales * 8.0).to(dtype).to(torch::kFloat32);
  const auto codes = ((groups - (zeros - scales * 8.0)) / scales).round().clamp(0, 15).to(torch::kInt32);
  const auto packed = at::_convert_weight_to_int4pack_for_cpu(codes.reshape({out, in}).contiguous(), 1);
  const auto scales_and_zeros =
      torch::cat({scales.reshape({out, -1, 1}), zeros.reshape({out, -1, 1})}, 2).transpose(0, 1).contiguous().to(dtype);
  return std::make_shared<Int4Weight>(packed, group_size, scales_and_zeros);
}

}  // namespace qalign::model
