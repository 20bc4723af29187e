#include "train/zero.h"

#include <c10/core/impl/VirtualGuardImpl.h>

#include <algorithm>

#include "train/grad_clip.h"
#include "train/host_buffer.h"
#include "train/tensor_bytes.h"

namespace qalign::train {

ZeroShards::ZeroShards(distributed::ProcessGroup& group, std::vector<std::string> names,
                       std::vector<torch::Tensor> params, ZeroOptions o, std::optional<distributed::BucketLayout> given)
    : group_(group), options_(o), param_names_(std::move(names)), params_(std::move(params)) {
  auto layout = given ? std::move(*given) : distributed::layout_buckets(params_, options_.bucket_bytes);
  bucket_of_ = std::move(layout.bucket_of);
  slot_of_ = std::move(layout.slot_of);
  arrived_.assign(params_.size(), false);
  copied_.assign(params_.size(), false);
  for (auto& planned : layout.buckets) {
    Bucket b;
    static_cast<distributed::BucketLayout::Bucket&>(b) = std::move(planned);
    buckets_.push_back(std::move(b));
  }
  torch::NoGradGuard no_grad;
  const int64_t world = group_.size();
  for (size_t bi = 0; bi < buckets_.size(); ++bi) {
    auto& b = buckets_[bi];
    b.padded = (b.numel + world - 1) / world * world;
    const int64_t chunk = b.padded / world, begin = chunk * group_.rank(), end = begin + chunk;
    const auto device = params_[b.params.front()].device();
    const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(device);
    // Offloaded, the owned state lives in host memory, page-locked when a GPU copies to and from it.
    const auto owned = [&] {
      return options_.offload ? host_zeros(chunk, torch::kFloat32, device.is_cuda()) : torch::zeros({chunk}, f32);
    };
    b.master = owned();
    b.grad = owned();
    for (size_t s = 0; s < b.params.size(); ++s) {
      const size_t k = b.params[s];
      const int64_t lo = std::max(begin, b.offsets[s]), hi = std::min(end, b.offsets[s] + params_[k].numel());
      if (lo >= hi) continue;
      const int64_t from = lo - b.offsets[s];
      auto slice = b.master.narrow(0, lo - begin, hi - lo);
      slice.copy_(params_[k].detach().reshape({-1}).narrow(0, from, hi - lo));
      names_.push_back(param_names_[k]);
      ranges_.push_back({param_names_[k], from, hi - lo});
      slices_.push_back(slice);
      slice_bucket_.push_back(bi);
      slice_chunk_offset_.push_back(lo - begin);
    }
  }
  accumulators_ = distributed::hook_gradients(params_, [this](size_t k) { ready(k); });
  for (const auto& b : buckets_) track(bytes_of(b.grad));
}

ZeroShards::~ZeroShards() = default;

void ZeroShards::begin_micro(bool last) {
  std::lock_guard<std::mutex> lock(mutex_);
  armed_ = true;
  last_ = last;
  next_bucket_ = 0;
  arrived_.assign(arrived_.size(), false);
  copied_.assign(copied_.size(), false);
  for (auto& b : buckets_) b.pending = b.params.size();
}

void ZeroShards::ready(size_t k) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!armed_ || copied_[k]) return;
  arrived_[k] = true;
  // Stage 2 fills one bucket at a time; an early gradient waits in its parameter.
  if (options_.stage >= 2 && bucket_of_[k] != next_bucket_) return;
  copy_in(k);
  launch_ready();
}

void ZeroShards::copy_in(size_t k) {
  auto& b = buckets_[bucket_of_[k]];
  torch::NoGradGuard no_grad;
  if (!b.flat.defined()) {
    b.flat = torch::zeros({b.padded}, params_[k].options().dtype(torch::kFloat32));
    track(bytes_of(b.flat));
  }
  auto& g = params_[k].mutable_grad();
  if (g.defined()) {
    b.flat.narrow(0, b.offsets[slot_of_[k]], params_[k].numel()).add_(g.reshape({-1}));
    g = torch::Tensor();
  }
  copied_[k] = true;
  b.pending -= 1;
}

void ZeroShards::launch_ready() {
  if (options_.stage == 1 && !last_) return;  // stage 1 communicates once per step
  while (next_bucket_ < buckets_.size() && buckets_[next_bucket_].pending == 0) {
    launch(next_bucket_);
    next_bucket_ += 1;
    if (options_.stage < 2 || next_bucket_ == buckets_.size()) continue;
    for (const size_t k : buckets_[next_bucket_].params)
      if (arrived_[k] && !copied_[k]) copy_in(k);
  }
}

void ZeroShards::launch(size_t bi) {
  if (options_.stage >= 2) {  // the bucket before is done before this one goes out: two buffers at most
    for (auto& f : in_flight_) complete(f);
    in_flight_.clear();
  }
  auto& b = buckets_[bi];
  InFlight f;
  f.bucket = bi;
  f.sent = b.flat.scalar_type() == options_.comm_dtype ? b.flat : b.flat.to(options_.comm_dtype);
  f.received = torch::empty({b.padded / group_.size()}, f.sent.options());
  if (!f.sent.is_same(b.flat)) track(bytes_of(f.sent));
  track(bytes_of(f.received));
  if (!f.sent.is_same(b.flat)) track(-bytes_of(b.flat));
  b.flat = torch::Tensor();
  f.work = group_.backend()._reduce_scatter_base(f.received, f.sent);
  in_flight_.push_back(std::move(f));
}

void ZeroShards::complete(InFlight& f) {
  group_.wait(f.work, "gradient reduce-scatter");
  torch::NoGradGuard no_grad;
  auto& grad = buckets_[f.bucket].grad;
  if (f.received.device() == grad.device()) {
    grad.add_(f.received);
  } else {
    // Offloaded from a GPU: a non-blocking copy into page-locked memory (from pageable memory it
    // would block), added at the next bucket or at the end of the micro-batch. The device buffers
    // can go now: later work on this stream runs after the copy.
    land();
    Landing l{f.bucket, torch::empty(f.received.sizes(), f.received.options().device(torch::kCPU).pinned_memory(true)),
              c10::Event(f.received.device().type())};
    l.staged.copy_(f.received, /*non_blocking=*/true);
    l.copied->record(c10::impl::VirtualGuardImpl(f.received.device().type()).getStream(f.received.device()));
    landing_ = std::move(l);
  }
  track(-bytes_of(f.sent) - bytes_of(f.received));
  f.sent = f.received = torch::Tensor();
}

void ZeroShards::land() {
  if (!landing_) return;
  landing_->copied->synchronize();
  buckets_[landing_->bucket].grad.add_(landing_->staged);
  landing_.reset();
}

void ZeroShards::end_micro() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (options_.stage == 1 && !last_) {
    armed_ = false;
    return;
  }
  // What backward did not deliver (no gradient, or no backward here) goes in as zeros, in order.
  send_through(buckets_.size() - 1);
  for (auto& f : in_flight_) complete(f);
  in_flight_.clear();
  land();
  armed_ = false;
  if (!last_) return;
  torch::NoGradGuard no_grad;
  for (auto& b : buckets_) b.grad.div_(static_cast<double>(group_.size()));
  for (size_t i = 0; i < slices_.size(); ++i)
    slices_[i].mutable_grad() = buckets_[slice_bucket_[i]].grad.narrow(0, slice_chunk_offset_[i], ranges_[i].numel);
}

void ZeroShards::flush_through(size_t bucket) {
  std::lock_guard<std::mutex> lock(mutex_);
  send_through(bucket);
}

void ZeroShards::send_through(size_t bucket) {
  while (next_bucket_ <= bucket && next_bucket_ < buckets_.size()) {
    for (const size_t k : buckets_[next_bucket_].params)
      if (!copied_[k]) copy_in(k);
    launch_ready();
  }
}

torch::Tensor ZeroShards::grad_norm() {
  auto squared = global_grad_norm(slices_).to(torch::kFloat64).square().reshape({1});
  group_.allreduce_sum(squared);
  return squared.sqrt().to(torch::kFloat32).reshape({});
}

void ZeroShards::all_gather() {
  torch::NoGradGuard no_grad;
  struct Gather {
    size_t bucket;
    torch::Tensor sent, flat;
    c10::intrusive_ptr<c10d::Work> work;
  };
  const auto finish = [&](Gather& g) {
    group_.wait(g.work, "parameter all-gather");
    const auto& b = buckets_[g.bucket];
    for (size_t s = 0; s < b.params.size(); ++s) {
      auto p = params_[b.params[s]].detach();
      p.view({-1}).copy_(g.flat.narrow(0, b.offsets[s], p.numel()));
    }
  };
  std::vector<Gather> pending;  // at most two buckets' gathers at a time
  for (size_t bi = 0; bi < buckets_.size(); ++bi) {
    const auto& b = buckets_[bi];
    const auto dtype = params_[b.params.front()].scalar_type();
    const auto device = params_[b.params.front()].device();
    Gather g{bi, b.master.to(device, dtype), torch::empty({b.padded}, params_[b.params.front()].options()), {}};
    g.work = group_.backend()._allgather_base(g.flat, g.sent);
    pending.push_back(std::move(g));
    if (pending.size() == 2) {
      finish(pending.front());
      pending.erase(pending.begin());
    }
  }
  for (auto& g : pending) finish(g);
}

void ZeroShards::zero_grad() {
  torch::NoGradGuard no_grad;
  for (auto& b : buckets_) b.grad.zero_();
  for (auto& s : slices_) s.mutable_grad() = torch::Tensor();
  for (auto& p : params_) p.mutable_grad() = torch::Tensor();
}

int64_t ZeroShards::master_bytes() const {
  int64_t total = 0;
  for (const auto& b : buckets_) total += bytes_of(b.master);
  return total;
}

void ZeroShards::track(int64_t delta) {
  live_gradient_bytes_ += delta;
  peak_gradient_bytes_ = std::max(peak_gradient_bytes_, live_gradient_bytes_);
}

}  // namespace qalign::train
