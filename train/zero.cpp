#include "train/zero.h"

#include <c10/core/impl/VirtualGuardImpl.h>

#include <algorithm>

#include "train/grad_clip.h"
#include "train/host_buffer.h"
#include "train/tensor_bytes.h"

namespace qalign::train {

GradientLayout whole_parameters(const distributed::BucketLayout& layout, const std::vector<torch::Tensor>& params) {
  GradientLayout out;
  for (const auto& b : layout.buckets) {
    GradientLayout::Bucket g;
    for (size_t s = 0; s < b.params.size(); ++s)
      g.segments.push_back({b.params[s], 0, params[b.params[s]].numel(), b.offsets[s]});
    g.numel = b.numel;
    out.buckets.push_back(std::move(g));
  }
  return out;
}

ZeroShards::ZeroShards(distributed::ProcessGroup& group, std::vector<std::string> names,
                       std::vector<torch::Tensor> params, ZeroOptions o, std::optional<GradientLayout> given)
    : group_(group), options_(o), param_names_(std::move(names)), params_(std::move(params)) {
  auto layout = given ? std::move(*given)
                      : whole_parameters(distributed::layout_buckets(params_, options_.bucket_bytes), params_);
  segments_of_.resize(params_.size());
  arrived_.assign(params_.size(), false);
  uncopied_.assign(params_.size(), 0);
  const int64_t world = group_.size();
  int64_t owned = 0;
  for (auto& planned : layout.buckets) {
    Bucket b;
    static_cast<GradientLayout::Bucket&>(b) = std::move(planned);
    b.padded = (b.numel + world - 1) / world * world;
    for (size_t s = 0; s < b.segments.size(); ++s) segments_of_[b.segments[s].param].push_back({buckets_.size(), s});
    owned += b.padded / world;
    buckets_.push_back(std::move(b));
  }
  torch::NoGradGuard no_grad;
  const auto device = params_.empty() ? torch::Device(torch::kCPU) : params_.front().device();
  // Offloaded, the owned state lives in host memory, page-locked when a GPU copies to and from it.
  const auto state = [&] {
    return options_.offload ? host_zeros(owned, torch::kFloat32, device.is_cuda())
                            : torch::zeros({owned}, torch::TensorOptions().dtype(torch::kFloat32).device(device));
  };
  masters_ = state();
  grads_ = state();
  int64_t at = 0;
  for (auto& b : buckets_) {
    const int64_t chunk = b.padded / world, begin = chunk * group_.rank(), end = begin + chunk;
    b.master = masters_.narrow(0, at, chunk);
    b.grad = grads_.narrow(0, at, chunk);
    for (const auto& s : b.segments) {
      const int64_t lo = std::max(begin, s.offset), hi = std::min(end, s.offset + s.numel);
      if (lo >= hi) continue;
      const int64_t from = s.from + lo - s.offset, where = at + lo - begin;
      masters_.narrow(0, where, hi - lo).copy_(params_[s.param].detach().reshape({-1}).narrow(0, from, hi - lo));
      // A parameter cut over buckets continues its range in the next one: one slice.
      if (!ranges_.empty() && ranges_.back().name == param_names_[s.param] &&
          ranges_.back().offset + ranges_.back().numel == from &&
          slice_offset_.back() + ranges_.back().numel == where) {
        ranges_.back().numel += hi - lo;
        continue;
      }
      names_.push_back(param_names_[s.param]);
      ranges_.push_back({param_names_[s.param], from, hi - lo});
      slice_offset_.push_back(where);
    }
    at += chunk;
  }
  for (size_t i = 0; i < ranges_.size(); ++i) slices_.push_back(masters_.narrow(0, slice_offset_[i], ranges_[i].numel));
  accumulators_ = distributed::hook_gradients(params_, [this](size_t k) { ready(k); });
  track(bytes_of(grads_));
}

ZeroShards::~ZeroShards() = default;

void ZeroShards::begin_micro(bool last) {
  std::lock_guard<std::mutex> lock(mutex_);
  armed_ = true;
  last_ = last;
  next_bucket_ = 0;
  arrived_.assign(arrived_.size(), false);
  for (size_t k = 0; k < params_.size(); ++k) uncopied_[k] = segments_of_[k].size();
  for (auto& b : buckets_) {
    b.copied.assign(b.segments.size(), false);
    b.pending = b.segments.size();
  }
}

void ZeroShards::ready(size_t k) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!armed_ || uncopied_[k] == 0) return;
  arrived_[k] = true;
  // Stage 2 fills one bucket at a time; an early gradient (or its part for a later bucket) waits
  // in its parameter.
  for (const auto& [bucket, segment] : segments_of_[k])
    if (options_.stage == 1 || bucket == next_bucket_) copy_in(bucket, segment);
  launch_ready();
}

void ZeroShards::copy_in(size_t bi, size_t si) {
  auto& b = buckets_[bi];
  if (b.copied[si]) return;
  const auto& s = b.segments[si];
  torch::NoGradGuard no_grad;
  if (!b.flat.defined()) {
    b.flat = torch::zeros({b.padded}, params_[s.param].options().dtype(torch::kFloat32));
    track(bytes_of(b.flat));
  }
  auto& g = params_[s.param].mutable_grad();
  if (g.defined()) b.flat.narrow(0, s.offset, s.numel).add_(g.reshape({-1}).narrow(0, s.from, s.numel));
  b.copied[si] = true;
  b.pending -= 1;
  if (--uncopied_[s.param] == 0) g = torch::Tensor();
}

void ZeroShards::launch_ready() {
  if (options_.stage == 1 && !last_) return;  // stage 1 communicates once per step
  while (next_bucket_ < buckets_.size() && buckets_[next_bucket_].pending == 0) {
    launch(next_bucket_);
    next_bucket_ += 1;
    if (options_.stage < 2 || next_bucket_ == buckets_.size()) continue;
    const auto& segments = buckets_[next_bucket_].segments;
    for (size_t s = 0; s < segments.size(); ++s)
      if (arrived_[segments[s].param]) copy_in(next_bucket_, s);
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
  group_.wait_and_release(f.work, "gradient reduce-scatter");
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
  grads_.div_(static_cast<double>(group_.size()));
  for (size_t i = 0; i < slices_.size(); ++i)
    slices_[i].mutable_grad() = grads_.narrow(0, slice_offset_[i], ranges_[i].numel);
}

void ZeroShards::flush_through(size_t bucket) {
  std::lock_guard<std::mutex> lock(mutex_);
  send_through(bucket);
}

void ZeroShards::send_through(size_t bucket) {
  while (next_bucket_ <= bucket && next_bucket_ < buckets_.size()) {
    for (size_t s = 0; s < buckets_[next_bucket_].segments.size(); ++s) copy_in(next_bucket_, s);
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
    group_.wait_and_release(g.work, "parameter all-gather");
    for (const auto& s : buckets_[g.bucket].segments)
      params_[s.param].detach().view({-1}).narrow(0, s.from, s.numel).copy_(g.flat.narrow(0, s.offset, s.numel));
  };
  std::vector<Gather> pending;  // at most two buckets' gathers at a time
  for (size_t bi = 0; bi < buckets_.size(); ++bi) {
    const auto& b = buckets_[bi];
    const auto& first = params_[b.segments.front().param];
    Gather g{bi, b.master.to(first.device(), first.scalar_type()), torch::empty({b.padded}, first.options()), {}};
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
  grads_.zero_();
  for (auto& s : slices_) s.mutable_grad() = torch::Tensor();
  for (auto& p : params_) p.mutable_grad() = torch::Tensor();
}

int64_t ZeroShards::master_bytes() const { return bytes_of(masters_); }

void ZeroShards::track(int64_t delta) {
  live_gradient_bytes_ += delta;
  peak_gradient_bytes_ = std::max(peak_gradient_bytes_, live_gradient_bytes_);
}

}  // namespace qalign::train
