#include "train/pixel_staging.h"

#include <c10/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

namespace qalign::train {

struct CopyDone {
  c10::cuda::CUDAEvent event;
};

StagedPixels stage_pixels(const std::vector<torch::Tensor>& pixels, torch::Device device) {
  StagedPixels out;
  if (!device.is_cuda()) {
    out.tensors = pixels;
    return out;
  }
  const auto side = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device.index());
  {
    c10::cuda::CUDAStreamGuard on_side(side);
    for (const auto& p : pixels)
      out.tensors.push_back(p.defined() ? (p.is_pinned() ? p : p.pin_memory()).to(device, /*non_blocking=*/true) : p);
  }
  out.done = std::make_shared<CopyDone>();
  out.done->event.record(side);
  return out;
}

std::vector<torch::Tensor> take_pixels(const StagedPixels& staged, torch::Device device) {
  if (!staged.done) return staged.tensors;
  const auto compute = c10::cuda::getCurrentCUDAStream(device.index());
  staged.done->event.block(compute);
  for (const auto& t : staged.tensors)
    if (t.defined()) t.record_stream(compute);
  return staged.tensors;
}

}  // namespace qalign::train
