#pragma once
// Pixels on their way to the training device. On a GPU each micro-batch's copy runs on one side
// stream (the same for the whole run) from page-locked memory (the loader's workers pin it), so the copies of a step's
// later micro-batches overlap the compute of its earlier ones; on the CPU the tensors pass through.
#include <torch/torch.h>

#include <memory>
#include <vector>

namespace qalign::train {

struct CopyDone;  // the side stream's event, where there is one

struct StagedPixels {
  std::vector<torch::Tensor> tensors;  // on the device once `done` has fired; undefined where text-only
  std::shared_ptr<CopyDone> done;
};

// Starts the copies of one micro-batch's pixels to `device`.
StagedPixels stage_pixels(const std::vector<torch::Tensor>& pixels, torch::Device device);

// The staged tensors, usable on the current stream: it waits for their copy, and the caching
// allocator keeps their memory until the current stream's work on them is done.
std::vector<torch::Tensor> take_pixels(const StagedPixels& staged, torch::Device device);

}  // namespace qalign::train
