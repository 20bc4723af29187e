#include "train/host_buffer.h"

#include <c10/cuda/CUDAException.h>
#include <cuda_runtime_api.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <new>

namespace qalign::train {

torch::Tensor host_zeros(int64_t numel, torch::ScalarType dtype, bool pinned) {
  const auto options = torch::TensorOptions().dtype(dtype);
  if (!pinned || numel == 0) return torch::zeros({numel}, options);
  const auto page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  const size_t bytes = (static_cast<size_t>(numel) * c10::elementSize(dtype) + page - 1) / page * page;
  void* p = std::aligned_alloc(page, bytes);
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, bytes);
  const cudaError_t rc = cudaHostRegister(p, bytes, cudaHostRegisterDefault);
  if (rc != cudaSuccess) {
    std::free(p);
    C10_CUDA_CHECK(rc);
  }
  return torch::from_blob(
      p, {numel},
      [](void* q) {
        cudaHostUnregister(q);
        std::free(q);
      },
      options);
}

}  // namespace qalign::train
