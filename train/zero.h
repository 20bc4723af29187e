#pragma once
// ZeRO stages 1 and 2 (zero_stage in the config), as DeepSpeed partitions a data-parallel run.
// The trainable parameters are laid out in buckets of about ddp_bucket_cap_mb (parameters in
// reverse order, roughly the order backward produces their gradients), each padded to a multiple
// of the world size W; rank r owns the r-th of the W equal chunks of every bucket. (Stage 3 gives
// its own buckets, train/zero3_buckets.h, which cut large parameters.) Per rank:
//
//   masters    float32, only the owned chunks (4P/W bytes), initialised from the parameters;
//   moments    AdamW's, for the owned chunks alone (8P/W), through slices named after their
//              parameters;
//   gradients  stage 1: each bucket's full float32 buffer sums the step's micro-batches and is
//              reduce-scattered after the last one; stage 2: every micro-batch's bucket is
//              reduce-scattered as soon as its gradients are in and added into the owned float32
//              chunk (4P/W), so at most two bucket buffers (one filling, one in flight) exist;
//              a gradient that arrives for a later bucket waits in its parameter until then.
//
// After the optimizer step each bucket's updated chunk is all-gathered, in the parameters' dtype,
// straight into the parameters. Communication of gradients is float32 or bfloat16 (reduced in
// that dtype, summed into float32).
#include <c10/core/Event.h>
#include <torch/torch.h>

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "qalign/distributed/buckets.h"
#include "qalign/distributed/process_group.h"

namespace qalign::train {

// Where each gradient is reduced: buckets, each a list of segments (elements [from, from + numel)
// of parameter `param` at `offset` in the bucket) and `numel` elements in all, a multiple of the
// world size W or padded to one; rank r owns the r-th of W equal chunks of every bucket. A
// parameter may be cut over buckets, but a rank's share of a parameter is one range.
struct GradientLayout {
  struct Segment {
    size_t param = 0;
    int64_t from = 0, numel = 0, offset = 0;
  };
  struct Bucket {
    std::vector<Segment> segments;
    int64_t numel = 0;
  };
  std::vector<Bucket> buckets;
};

// Whole parameters in DDP's buckets (distributed::layout_buckets), for stages 1 and 2.
GradientLayout whole_parameters(const distributed::BucketLayout& layout, const std::vector<torch::Tensor>& params);

struct ZeroOptions {
  int stage = 2;                                   // 1, 2, or 3 (gradients as stage 2; zero3.h keeps the parameters)
  int64_t bucket_bytes = 25 << 20;                 // of float32 gradient per bucket
  torch::ScalarType comm_dtype = torch::kFloat32;  // gradients on the wire
  // offload_optimizer: cpu. The owned masters and gradient chunks (and so AdamW's moments, which
  // take their device) in host memory; reduced gradients are copied there and the updated
  // masters back, and the optimizer steps on the host.
  bool offload = false;
};

// The part of one parameter a rank owns: elements [offset, offset + numel) of its flattened
// values.
struct ShardRange {
  std::string name;
  int64_t offset = 0, numel = 0;
};

class ZeroShards {
 public:
  // `params`: the model's trainable parameters by name, equal on every rank (already broadcast);
  // at stage 3 they may hold no values, and Zero3Params::give_masters sets the masters after.
  // `layout`: the buckets, when not DDP's (ZeRO-3's, so that the owned master chunks are the
  // same elements as the owned parameter shards).
  ZeroShards(distributed::ProcessGroup& group, std::vector<std::string> names, std::vector<torch::Tensor> params,
             ZeroOptions o, std::optional<GradientLayout> layout = std::nullopt);
  ~ZeroShards();
  ZeroShards(const ZeroShards&) = delete;
  ZeroShards& operator=(const ZeroShards&) = delete;

  // Around every micro-batch of a step, on every rank the same number of times: begin_micro before
  // its backward, end_micro after it, or in its place when this rank has nothing to compute
  // (missing gradients count as zeros). After the step's last end_micro the slices' gradients
  // hold the averaged gradient.
  void begin_micro(bool last);
  void end_micro();
  // Sends buckets up to and including `bucket` now, a gradient not delivered counting as zeros:
  // ZeRO-3 calls it as backward's schedule passes each unit, so that every rank reduces the same
  // bucket at the same point of its schedule whatever its batch computed.
  void flush_through(size_t bucket);

  // This rank's slices of the float32 masters (views into the owned chunks), named and ranged
  // after their parameters: what the optimizer updates.
  const std::vector<std::string>& names() const { return names_; }
  const std::vector<torch::Tensor>& slices() const { return slices_; }
  const std::vector<ShardRange>& ranges() const { return ranges_; }
  // The L2 norm of the whole averaged gradient, summed over the ranks' slices.
  torch::Tensor grad_norm();
  // After the optimizer step: every rank's updated chunks into every rank's parameters.
  void all_gather();
  // Bucket `b`'s owned float32 master chunk (what all_gather sends).
  const torch::Tensor& owned_master(size_t b) const { return buckets_[b].master; }
  size_t bucket_count() const { return buckets_.size(); }
  bool offloaded() const { return options_.offload; }
  void zero_grad();

  // Bytes held, counted from the tensors: the owned masters, and the most gradient storage
  // (owned chunks, bucket buffers, receive chunks) alive at once since construction.
  int64_t master_bytes() const;
  int64_t peak_gradient_bytes() const { return peak_gradient_bytes_; }

 private:
  struct Bucket : GradientLayout::Bucket {
    int64_t padded = 0;
    torch::Tensor master, grad;  // owned chunk: float32 [padded / W], views into the owned state
    torch::Tensor flat;          // the whole bucket's gradient while it fills
    std::vector<bool> copied;    // per segment, this micro-batch
    size_t pending = 0;
  };
  struct InFlight {
    size_t bucket = 0;
    torch::Tensor sent, received;
    c10::intrusive_ptr<c10d::Work> work;
  };
  // An offloaded bucket's reduced gradient on its way from the GPU to page-locked host memory:
  // added to the owned chunk once the copy is done, so the host never waits for it in line.
  struct Landing {
    size_t bucket = 0;
    torch::Tensor staged;
    std::optional<c10::Event> copied;
  };
  void ready(size_t param);
  void copy_in(size_t bucket, size_t segment);
  void launch_ready();
  void send_through(size_t bucket);
  void launch(size_t bucket);
  void complete(InFlight& f);
  // Adds the landing gradient, if any, to its owned chunk (waiting for its copy first).
  void land();
  // Adds `delta` bytes to the gradient storage alive now, and keeps the peak.
  void track(int64_t delta);

  distributed::ProcessGroup& group_;
  ZeroOptions options_;
  std::vector<std::string> param_names_;
  std::vector<torch::Tensor> params_;
  std::vector<Bucket> buckets_;
  torch::Tensor masters_, grads_;                                    // every owned chunk, one after another
  std::vector<std::vector<std::pair<size_t, size_t>>> segments_of_;  // per parameter: (bucket, segment)
  std::vector<bool> arrived_;
  std::vector<size_t> uncopied_;  // per parameter: its segments not yet in their buckets
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators_;  // keeps the hooked nodes alive
  std::vector<InFlight> in_flight_;
  std::optional<Landing> landing_;
  std::mutex mutex_;
  bool armed_ = false, last_ = false;
  size_t next_bucket_ = 0;
  int64_t live_gradient_bytes_ = 0, peak_gradient_bytes_ = 0;
  std::vector<std::string> names_;
  std::vector<ShardRange> ranges_;
  std::vector<torch::Tensor> slices_;
  std::vector<int64_t> slice_offset_;  // in masters_ and grads_
};

}  // namespace qalign::train
