#include "qalign/distributed/ddp.h"

namespace qalign::distributed {

DataParallel::DataParallel(ProcessGroup& group, std::vector<torch::Tensor> hooked, std::vector<torch::Tensor> targets,
                           std::function<void(size_t)> gather, int64_t bucket_bytes)
    : group_(group), hooked_(std::move(hooked)), targets_(std::move(targets)), gather_(std::move(gather)) {
  auto layout = layout_buckets(targets_, bucket_bytes);
  bucket_of_ = std::move(layout.bucket_of);
  slot_of_ = std::move(layout.slot_of);
  copied_.assign(hooked_.size(), false);
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(group_.device());
  for (auto& planned : layout.buckets) {
    Bucket b;
    static_cast<BucketLayout::Bucket&>(b) = std::move(planned);
    b.flat = torch::zeros({b.numel}, f32);
    buckets_.push_back(std::move(b));
  }
  accumulators_ = hook_gradients(hooked_, [this](size_t k) { ready(k); });
}

DataParallel::~DataParallel() = default;

int64_t DataParallel::buffer_bytes() const {
  int64_t total = 0;
  for (const auto& b : buckets_) total += b.flat.numel() * 4;
  return total;
}

void DataParallel::arm() {
  std::lock_guard<std::mutex> lock(mutex_);
  armed_ = true;
  next_bucket_ = 0;
  copied_.assign(copied_.size(), false);
  for (auto& b : buckets_) {
    b.pending = b.params.size();
    b.work.reset();
  }
}

void DataParallel::copy_in(size_t k) {
  gather_(k);
  auto& b = buckets_[bucket_of_[k]];
  auto slice = b.flat.narrow(0, b.offsets[slot_of_[k]], targets_[k].numel());
  const auto& g = targets_[k].grad();
  torch::NoGradGuard no_grad;
  if (g.defined())
    slice.copy_(g.reshape({-1}));
  else
    slice.zero_();
  copied_[k] = true;
  b.pending -= 1;
}

void DataParallel::ready(size_t k) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!armed_ || copied_[k]) return;
  copy_in(k);
  launch_ready_buckets();
}

void DataParallel::launch_ready_buckets() {
  while (next_bucket_ < buckets_.size() && buckets_[next_bucket_].pending == 0) {
    std::vector<torch::Tensor> ts{buckets_[next_bucket_].flat};
    buckets_[next_bucket_].work = group_.backend().allreduce(ts);
    next_bucket_ += 1;
  }
}

void DataParallel::finish() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (size_t k = 0; k < copied_.size(); ++k)
    if (!copied_[k]) copy_in(k);
  launch_ready_buckets();
  armed_ = false;
  torch::NoGradGuard no_grad;
  const double world = group_.size();
  for (auto& b : buckets_) {
    group_.wait(b.work, "gradient all-reduce");
    b.flat.div_(world);
    for (size_t s = 0; s < b.params.size(); ++s) {
      auto& t = targets_[b.params[s]];
      auto avg = b.flat.narrow(0, b.offsets[s], t.numel()).view(t.sizes()).to(t.device(), t.scalar_type());
      if (t.grad().defined())
        t.mutable_grad().copy_(avg);
      else
        t.mutable_grad() = avg.clone();
    }
  }
}

}  // namespace qalign::distributed
