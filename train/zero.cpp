#include "train/zero.h"

#include <algorithm>

#include "train/grad_clip.h"

namespace qalign::train {

ZeroShards::ZeroShards(ProcessGroup& group, const GradSync& sync, const std::vector<std::string>& names,
                       const std::vector<torch::Tensor>& masters)
    : group_(group), sync_(sync), masters_(masters) {
  torch::NoGradGuard no_grad;
  const auto& buckets = sync.buckets();
  for (size_t b = 0; b < buckets.size(); ++b) {
    const auto& bucket = buckets[b];
    const int64_t chunk = bucket.padded / group.size();
    const int64_t begin = chunk * group.rank(), end = begin + chunk;
    for (size_t s = 0; s < bucket.params.size(); ++s) {
      const size_t k = bucket.params[s];
      const int64_t lo = std::max(begin, bucket.offsets[s]);
      const int64_t hi = std::min(end, bucket.offsets[s] + masters[k].numel());
      if (lo >= hi) continue;
      layout_.push_back({b, k, lo - begin, lo - bucket.offsets[s], hi - lo});
      names_.push_back(names[k]);
      // detach(): the same storage, updated in place by the optimizer without autograd.
      slices_.push_back(masters[k].detach().view({-1}).narrow(0, lo - bucket.offsets[s], hi - lo));
    }
  }
}

void ZeroShards::attach_grads() {
  for (size_t i = 0; i < layout_.size(); ++i) {
    const auto& l = layout_[i];
    slices_[i].mutable_grad() = sync_.buckets()[l.bucket].chunk.narrow(0, l.chunk_offset, l.numel);
  }
}

torch::Tensor ZeroShards::grad_norm() {
  auto squared = global_grad_norm(slices_).to(torch::kFloat64).square().reshape({1});
  group_.allreduce_sum(squared);
  return squared.sqrt().to(torch::kFloat32).reshape({});
}

void ZeroShards::all_gather() {
  torch::NoGradGuard no_grad;
  const auto& buckets = sync_.buckets();
  std::vector<torch::Tensor> chunks, flats;  // alive until their gathers are done
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  // Every bucket's gather is launched before the first is waited for.
  for (size_t b = 0; b < buckets.size(); ++b) {
    auto chunk = torch::zeros({buckets[b].padded / group_.size()}, buckets[b].chunk.options());
    for (size_t i = 0; i < layout_.size(); ++i)
      if (layout_[i].bucket == b) chunk.narrow(0, layout_[i].chunk_offset, layout_[i].numel).copy_(slices_[i]);
    flats.push_back(torch::empty({buckets[b].padded}, chunk.options()));
    chunks.push_back(chunk);
    works.push_back(group_.backend()._allgather_base(flats.back(), chunks.back()));
  }
  for (size_t b = 0; b < buckets.size(); ++b) {
    group_.wait(works[b], "parameter all-gather");
    const auto& bucket = buckets[b];
    for (size_t s = 0; s < bucket.params.size(); ++s) {
      auto& m = masters_[bucket.params[s]];
      m.detach().view({-1}).copy_(flats[b].narrow(0, bucket.offsets[s], m.numel()));
    }
  }
}

}  // namespace qalign::train
