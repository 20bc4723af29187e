#include "train/grad_sync.h"

#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <torch/csrc/autograd/variable.h>

namespace qalign::train {

GradSync::GradSync(ProcessGroup& group, std::vector<torch::Tensor> hooked, std::vector<torch::Tensor> targets,
                   std::function<void(size_t)> gather, int64_t bucket_bytes)
    : group_(group), hooked_(std::move(hooked)), targets_(std::move(targets)), gather_(std::move(gather)) {
  const size_t n = hooked_.size();
  bucket_of_.resize(n);
  slot_of_.resize(n);
  copied_.assign(n, false);
  int64_t bytes = 0;
  for (size_t k = n; k-- > 0;) {
    const int64_t size = targets_[k].numel() * 4;  // float32 buckets
    if (buckets_.empty() || (bytes > 0 && bytes + size > bucket_bytes)) {
      buckets_.emplace_back();
      bytes = 0;
    }
    auto& b = buckets_.back();
    bucket_of_[k] = buckets_.size() - 1;
    slot_of_[k] = b.params.size();
    b.offsets.push_back(b.params.empty() ? 0 : b.offsets.back() + targets_[b.params.back()].numel());
    b.params.push_back(k);
    bytes += size;
  }
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(group_.device());
  for (auto& b : buckets_) {
    b.numel = b.offsets.back() + targets_[b.params.back()].numel();
    b.flat = torch::zeros({b.numel}, f32);
  }
  for (size_t k = 0; k < n; ++k) {
    auto acc = torch::autograd::impl::grad_accumulator(hooked_[k]);
    acc->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
        [this, k](const torch::autograd::variable_list& outputs, const torch::autograd::variable_list&) {
          ready(k);
          return outputs;
        }));
    accumulators_.push_back(std::move(acc));
  }
}

GradSync::~GradSync() = default;

int64_t GradSync::buffer_bytes() const {
  int64_t total = 0;
  for (const auto& b : buckets_) total += b.flat.numel() * 4;
  return total;
}

void GradSync::arm() {
  std::lock_guard<std::mutex> lock(mutex_);
  armed_ = true;
  next_bucket_ = 0;
  copied_.assign(copied_.size(), false);
  for (auto& b : buckets_) {
    b.pending = b.params.size();
    b.work.reset();
  }
}

void GradSync::copy_in(size_t k) {
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

void GradSync::ready(size_t k) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!armed_ || copied_[k]) return;
  copy_in(k);
  launch_ready_buckets();
}

void GradSync::launch_ready_buckets() {
  while (next_bucket_ < buckets_.size() && buckets_[next_bucket_].pending == 0) {
    std::vector<torch::Tensor> ts{buckets_[next_bucket_].flat};
    buckets_[next_bucket_].work = group_.backend().allreduce(ts);
    next_bucket_ += 1;
  }
}

void GradSync::finish() {
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

}  // namespace qalign::train
