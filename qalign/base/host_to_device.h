#pragma once
// A host tensor moved to a device without making the host wait. A "non-blocking" copy from
// pageable memory is not: CUDA first synchronises the stream. So a GPU gets the tensor from
// page-locked memory (the caching host allocator's, reused once the copy is done).
#include <torch/torch.h>

namespace qalign {

inline torch::Tensor host_to_device(const torch::Tensor& t, torch::Device device) {
  if (t.device() == device) return t;
  const bool pin = device.is_cuda() && t.is_cpu() && !t.is_pinned();
  return (pin ? t.pin_memory() : t).to(device, /*non_blocking=*/true);
}

}  // namespace qalign
