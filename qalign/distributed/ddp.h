#pragma once
// Data-parallel gradient averaging as DDP does it: the gradients are laid out in buckets of
// about 25 MB (parameters in reverse order, roughly the order backward produces them), and
// during an armed backward each bucket is all-reduced as soon as the last of its gradients has
// been accumulated, so communication overlaps the rest of the backward pass. Buckets launch in
// index order on every rank, the order the backend pairs collectives by. Unarmed backwards (the
// accumulation micro-steps) communicate nothing. ZeRO's sharded version is train/zero.h.
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "qalign/distributed/buckets.h"
#include "qalign/distributed/process_group.h"

namespace qalign::distributed {

class DataParallel {
 public:
  // `hooked[i]`: the model parameter whose gradient accumulation signals readiness; its summed
  // gradient is in targets[i].grad() once `gather(i)` has run (gather moves a bfloat16 gradient
  // into its float32 master; it may do nothing). Averaged gradients are written to targets[i].
  DataParallel(ProcessGroup& group, std::vector<torch::Tensor> hooked, std::vector<torch::Tensor> targets,
               std::function<void(size_t)> gather, int64_t bucket_bytes = 25 << 20);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  // Arms the hooks for the next backward, the last micro-step of an optimizer step.
  void arm();
  // Launches the buckets the backward left (parameters without a gradient, or no backward at
  // all on this rank, count as zeros), waits for all of them and writes the averages back.
  void finish();

  // The layout (qalign/distributed/buckets.h) and each bucket's float32 buffer.
  struct Bucket : BucketLayout::Bucket {
    torch::Tensor flat;
    size_t pending = 0;
    c10::intrusive_ptr<c10d::Work> work;
  };
  const std::vector<Bucket>& buckets() const { return buckets_; }
  // Bytes of the float32 bucket buffers.
  int64_t buffer_bytes() const;

 private:
  void ready(size_t param);
  void copy_in(size_t param);
  void launch_ready_buckets();

  ProcessGroup& group_;
  std::vector<torch::Tensor> hooked_, targets_;
  std::function<void(size_t)> gather_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_, slot_of_;
  std::vector<bool> copied_;
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators_;  // keeps the hooked nodes alive
  std::mutex mutex_;
  bool armed_ = false;
  size_t next_bucket_ = 0;
};

}  // namespace qalign::distributed
