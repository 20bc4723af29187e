// NCCL through c10d's ProcessGroupNCCL (in the wheel's libtorch_cuda.so; nccl.h from CUDA).
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include "qalign/distributed/process_group.h"

namespace qalign::distributed {

c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                    torch::Device device, std::chrono::milliseconds timeout) {
  c10::cuda::set_device(device.index());  // each rank on its own GPU
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, options);
}

}  // namespace qalign::distributed
