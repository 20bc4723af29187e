#pragma once
// The LibTorch calls whose spelling changes between releases, in one place (built against 2.11).
#include <torch/torch.h>

namespace qalign::compat {

inline bool cuda_available() { return torch::cuda::is_available(); }
inline int64_t cuda_device_count() { return static_cast<int64_t>(torch::cuda::device_count()); }

// softmax(q·kᵀ·scale + mask)·v through ATen's fused kernel (flash / memory-efficient on CUDA).
// q: [B,H,Lq,D], k/v: [B,Hkv,Lk,D]; Hkv may divide H (grouped-query attention).
inline torch::Tensor scaled_dot_product_attention(const torch::Tensor& q, const torch::Tensor& k,
                                                  const torch::Tensor& v, const std::optional<torch::Tensor>& mask,
                                                  bool causal, double scale) {
  return at::scaled_dot_product_attention(q, k, v, mask, /*dropout_p=*/0.0, causal, scale,
                                          /*enable_gqa=*/k.size(1) != q.size(1));
}

}  // namespace qalign::compat
