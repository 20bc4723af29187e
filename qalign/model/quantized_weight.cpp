#include "qalign/model/quantized_weight.h"

#include <algorithm>

#include "qalign/base/error.h"

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
  int64_t bytes() const override { return q_.nbytes() + scales_.nbytes(); }

 private:
  torch::Tensor q_, scales_;  // [out,in] int8, [out] bfloat16
};

// int8 weights × int8 activations quantised on the fly (one scale per call), through fbgemm's
// packed u8·s8 kernel (VNNI), which runs in float32 activations.
class DynamicInt8Weight : public QuantizedWeight {
 public:
  DynamicInt8Weight(c10::IValue packed, int64_t out, int64_t in) : packed_(std::move(packed)), out_(out), in_(in) {}
  // fbgemm's packed codes plus a float scale, an int32 zero point and column offset per row.
  int64_t bytes() const override { return quantized_bytes(out_, in_, "int8dyn", 0); }
  torch::Tensor matmul(const torch::Tensor& x) const override {
    static const auto op = c10::Dispatcher::singleton().findSchemaOrThrow("quantized::linear_dynamic", "");
    std::vector<c10::IValue> stack{x.reshape({-1, x.size(-1)}).to(torch::kFloat32).contiguous(), packed_, false};
    op.callBoxed(&stack);
    return like_input(stack.at(0).toTensor(), x);
  }

 private:
  c10::IValue packed_;  // LinearPackedParamsBase
  int64_t out_, in_;
};

class Int4Weight : public QuantizedWeight {
 public:
  Int4Weight(torch::Tensor packed, int64_t group_size, torch::Tensor scales_and_zeros)
      : packed_(std::move(packed)), group_size_(group_size), scales_and_zeros_(std::move(scales_and_zeros)) {}
  torch::Tensor matmul(const torch::Tensor& x) const override {
    const auto rows = as_rows(x);
    return like_input(packed_.is_cuda()
                          ? at::_weight_int4pack_mm(rows, packed_, group_size_, scales_and_zeros_)
                          : at::_weight_int4pack_mm_for_cpu(rows, packed_, group_size_, scales_and_zeros_),
                      x);
  }
  int64_t bytes() const override { return packed_.nbytes() + scales_and_zeros_.nbytes(); }

 private:
  torch::Tensor packed_;
  int64_t group_size_;
  torch::Tensor scales_and_zeros_;  // [in/group, out, 2] bfloat16
};

constexpr double kFp8Max = 448.0;  // the largest float8 e4m3 value

// Rows scaled into float8 e4m3: [rows, in] codes and a float32 scale per row.
std::pair<torch::Tensor, torch::Tensor> to_fp8_rows(const torch::Tensor& x) {
  const auto x32 = x.to(torch::kFloat32);
  const auto scales = (x32.abs().amax(1, true) / kFp8Max).clamp_min(1e-12);
  return {(x32 / scales).to(torch::kFloat8_e4m3fn), scales};
}

// float8 weights and activations, both with a scale per row, through _scaled_mm (Hopper GPUs).
class Fp8Weight : public QuantizedWeight {
 public:
  Fp8Weight(torch::Tensor q, torch::Tensor scales) : q_(std::move(q)), scales_(std::move(scales)) {}
  torch::Tensor matmul(const torch::Tensor& x) const override {
    const auto [xq, x_scales] = to_fp8_rows(as_rows(x));
    try {
      // _scaled_mm wants the second operand column-major: the row-major [out,in] codes, transposed.
      return like_input(
          at::_scaled_mm(xq, q_.t(), x_scales, scales_.view({1, -1}), std::nullopt, std::nullopt, torch::kBFloat16), x);
    } catch (const c10::Error& e) {  // e.g. a GPU older than compute capability 8.9
      fail("--quantize", "", std::string("fp8: ") + e.what_without_backtrace());
    }
  }
  int64_t bytes() const override { return q_.nbytes() + scales_.nbytes(); }

 private:
  torch::Tensor q_, scales_;  // [out,in] float8 e4m3, [out] float32
};

// Rows [n, in] of a weight in int4: the packed codes and [n, in/group, 2] bfloat16 scales and zeros.
std::pair<torch::Tensor, torch::Tensor> int4_rows(const torch::Tensor& w, int64_t group_size) {
  const auto dtype = torch::kBFloat16;
  const int64_t n = w.size(0), in = w.size(1);
  const auto groups = w.to(torch::kFloat32).reshape({-1, group_size});
  const auto lo = groups.amin(1, true), hi = groups.amax(1, true);
  const auto scales = ((hi - lo).clamp_min(1e-6) / 15.0).to(dtype).to(torch::kFloat32);
  // The kernel reads w = (q - 8)·scale + zero, so zero is the group's value at code 8.
  const auto zeros = (lo + scales * 8.0).to(dtype).to(torch::kFloat32);
  const auto codes = ((groups - (zeros - scales * 8.0)) / scales).round().clamp(0, 15).to(torch::kInt32);
  const auto grid = codes.reshape({n, in});
  // On a GPU: two codes a byte (the first in the high half), tiled for tinygemm (8 inner k-tiles).
  auto packed = w.is_cuda() ? at::_convert_weight_to_int4pack(grid.slice(1, 0, in, 2)
                                                                  .bitwise_left_shift(4)
                                                                  .bitwise_or(grid.slice(1, 1, in, 2))
                                                                  .to(torch::kUInt8)
                                                                  .contiguous(),
                                                              8)
                            : at::_convert_weight_to_int4pack_for_cpu(grid.contiguous(), 1);
  return {packed, torch::cat({scales.reshape({n, -1, 1}), zeros.reshape({n, -1, 1})}, 2).to(dtype)};
}

}  // namespace

int64_t quantized_bytes(int64_t out, int64_t in, const std::string& mode, int64_t group_size) {
  if (mode == "int8") return out * in + out * 2;        // codes, bfloat16 scales
  if (mode == "fp8") return out * in + out * 4;         // codes, float32 scales
  if (mode == "int8dyn") return out * in + out * 12;    // codes, float scale, zero point, column offset
  return out * in / 2 + in / group_size * out * 2 * 2;  // two codes a byte, bfloat16 scale and zero a group
}

std::shared_ptr<QuantizedWeight> quantize_int8(const torch::Tensor& w) {
  const auto dtype = torch::kBFloat16;
  torch::NoGradGuard g;
  auto q = torch::empty(w.sizes(), w.options().dtype(torch::kInt8));
  auto scales = torch::empty({w.size(0)}, w.options().dtype(dtype));
  // A block of rows at a time: the float32 temporaries stay small beside the weight, which
  // matters when each weight is quantised while a full-size model loads.
  constexpr int64_t kRows = 256;
  for (int64_t r = 0; r < w.size(0); r += kRows) {
    const int64_t n = std::min(kRows, w.size(0) - r);
    const auto w32 = w.narrow(0, r, n).to(torch::kFloat32);
    // An all-zero row keeps a positive scale (its codes are all 0).
    const auto s = (w32.abs().amax(1) / 127.0).clamp_min(1e-12).to(dtype);
    scales.narrow(0, r, n).copy_(s);
    q.narrow(0, r, n).copy_((w32 / s.to(torch::kFloat32).unsqueeze(1)).round().clamp(-127, 127));
  }
  return std::make_shared<Int8Weight>(q, scales);
}

std::shared_ptr<QuantizedWeight> quantize_int8_dynamic(const torch::Tensor& w) {
  torch::NoGradGuard g;
  const auto w32 = w.to(torch::kFloat32);
  const auto scales = (w32.abs().amax(1) / 127.0).clamp_min(1e-12).to(torch::kDouble);
  const auto q = torch::quantize_per_channel(w32, scales, torch::zeros({w.size(0)}, torch::kLong), 0, torch::kQInt8);
  static const auto prepack = c10::Dispatcher::singleton().findSchemaOrThrow("quantized::linear_prepack", "");
  std::vector<c10::IValue> stack{q, c10::IValue()};
  prepack.callBoxed(&stack);
  return std::make_shared<DynamicInt8Weight>(stack.at(0), w.size(0), w.size(1));
}

std::shared_ptr<QuantizedWeight> quantize_int4(const torch::Tensor& w, int64_t group_size) {
  torch::NoGradGuard g;
  const int64_t out = w.size(0);
  // On the CPU a block of rows at a time (its packing is row by row), so the float32 and int32
  // temporaries stay small while a full-size model loads; a GPU packs the whole weight at once.
  const int64_t block = w.is_cuda() ? out : 256;
  std::vector<torch::Tensor> packed, scales_and_zeros;
  for (int64_t r = 0; r < out; r += block) {
    auto [p, sz] = int4_rows(w.narrow(0, r, std::min(block, out - r)), group_size);
    packed.push_back(std::move(p));
    scales_and_zeros.push_back(std::move(sz));
  }
  return std::make_shared<Int4Weight>(torch::cat(packed), group_size,
                                      torch::cat(scales_and_zeros).transpose(0, 1).contiguous());
}

std::shared_ptr<QuantizedWeight> quantize_fp8(const torch::Tensor& w) {
  torch::NoGradGuard g;
  auto [q, scales] = to_fp8_rows(w);
  return std::make_shared<Fp8Weight>(q.contiguous(), scales.view({-1}).contiguous());
}

}  // namespace qalign::model
