#pragma once
// Host memory for state a GPU copies to and from (ZeRO's offloaded masters and gradient shard).
// The caching host allocator behind pinned_memory(true) rounds every block up to a power of two
// (a 524 MB shard would hold 1 GiB); this page-locks exactly the pages asked for instead.
#include <torch/torch.h>

#include <cstdint>

namespace qalign::train {

// numel zeros of `dtype` on the host. `pinned`: page-aligned, rounded up to whole pages and
// registered with CUDA (unregistered when the tensor is freed); else an ordinary CPU tensor,
// counted by train/cpu_memory.h as the trainer's other tensors are.
torch::Tensor host_zeros(int64_t numel, torch::ScalarType dtype, bool pinned);

}  // namespace qalign::train
