#pragma once
// How data parallelism groups gradients for communication, as DDP does: the parameters in
// reverse order (roughly the order backward produces their gradients), cut into buckets of about
// `bucket_bytes` of float32 (a parameter larger than that gets a bucket of its own), and the
// autograd hooks that say when a parameter's gradient has been accumulated.
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <vector>

namespace qalign::distributed {

struct BucketLayout {
  struct Bucket {
    std::vector<size_t> params;    // indices into the parameter list
    std::vector<int64_t> offsets;  // each one's first element in the bucket
    int64_t numel = 0;
  };
  std::vector<Bucket> buckets;
  std::vector<size_t> bucket_of, slot_of;  // per parameter: its bucket and its place there
};

BucketLayout layout_buckets(const std::vector<torch::Tensor>& params, int64_t bucket_bytes);

// Calls on_ready(k) whenever autograd has accumulated a gradient into params[k]. The hooks live as
// long as the returned nodes.
std::vector<std::shared_ptr<torch::autograd::Node>> hook_gradients(const std::vector<torch::Tensor>& params,
                                                                   const std::function<void(size_t)>& on_ready);

}  // namespace qalign::distributed
