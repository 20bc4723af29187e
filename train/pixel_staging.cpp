#include "train/pixel_staging.h"

#include <c10/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <map>
#include <mutex>

namespace qalign::train {

struct CopyDone {
  c10::cuda::CUDAEvent event;
};

namespace {

// One side stream per GPU for the whole run: the caching allocator keeps its cached blocks per
// stream, so a new pool stream per micro-batch would keep a micro-batch's pixels cached on each.
c10::cuda::CUDAStream side_stream(c10::DeviceIndex index) {
  static std::mutex mutex;
  static std::map<c10::DeviceIndex, c10::cuda::CUDAStream> streams;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = streams.find(index);
  if (it == streams.end())
    it = streams.emplace(index, c10::cuda::getStreamFromPool(/*isHighPriority=*/false, index)).first;
  return it->second;
}

}  // namespace

StagedPixels stage_pixels(const std::vector<torch::Tensor>& pixels, torch::Device device) {
  StagedPixels out;
  if (!device.is_cuda()) {
    out.tensors = pixels;
    return out;
  }
  const auto side = side_stream(device.index());
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
