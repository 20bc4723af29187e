#include "train/zero3.h"

#include <algorithm>
#include <limits>

#include "qalign/base/error.h"
#include "train/activation_checkpoint.h"
#include "train/tensor_bytes.h"
#include "train/zero.h"

namespace qalign::train {

Zero3Params::Zero3Params(distributed::ProcessGroup& group, model::Owl2ForCausalLM& m,
                         const std::vector<std::string>& trainable, int64_t prefetch, int64_t bucket_bytes)
    : group_(group), gathers_(group.another_backend("zero3-gathers")), model_(m), prefetch_(prefetch) {
  auto& o = *m->model;
  auto& v = *o.vision_model;
  std::vector<std::pair<std::string, torch::nn::Module*>> parts{{"model.vision_model.embeddings.", v.embeddings.get()}};
  for (size_t i = 0; i < v.layers->size(); ++i)
    parts.push_back({"model.vision_model.encoder.layers." + std::to_string(i) + ".", v.layers[i].get()});
  parts.push_back({"model.vision_model.post_layernorm.", v.post_layernorm.get()});
  parts.push_back({"model.visual_abstractor.", o.visual_abstractor.get()});
  parts.push_back({"model.embed_tokens.", o.embed_tokens.get()});
  for (size_t i = 0; i < o.layers->size(); ++i)
    parts.push_back({"model.layers." + std::to_string(i) + ".", o.layers[i].get()});
  parts.push_back({"model.norm.", o.norm.get()});
  parts.push_back({"lm_head.", m->lm_head.get()});
  if (m->score_head) parts.push_back({"score_head.", m->score_head.get()});

  std::map<std::string, int64_t> trainable_index;
  for (size_t i = 0; i < trainable.size(); ++i) trainable_index[trainable[i]] = static_cast<int64_t>(i);
  const int64_t world = group_.size();
  int64_t covered = 0, trainable_covered = 0;
  torch::NoGradGuard no_grad;
  for (const auto& [prefix, module] : parts) {
    Unit u;
    u.name = prefix.substr(0, prefix.size() - 1);
    u.module = module;
    for (const auto& item : module->named_parameters()) {
      const auto it = trainable_index.find(prefix + item.key());
      auto& part = it != trainable_index.end() ? u.trainable : u.frozen;
      if (it != trainable_index.end()) part.trainable_index.push_back(it->second);
      part.params.push_back(item.value());
      part.numel += item.value().numel();
    }
    for (auto* part : {&u.trainable, &u.frozen}) {
      if (part->params.empty()) continue;
      std::vector<int64_t> numel;
      for (const auto& p : part->params) numel.push_back(p.numel());
      lay_out(*part,
              part == &u.trainable ? group_pieces(numel, bucket_bytes)
                                   : std::vector<ZeroPieceRun>{{0, numel.size(), part->numel}},
              world);
      part->shard = torch::zeros({part->padded / world}, part->params.front().options().requires_grad(false));
      for_each_owned(*part, [&](size_t s, int64_t from, int64_t at, int64_t n) {
        part->shard.narrow(0, at, n).copy_(part->params[s].detach().reshape({-1}).narrow(0, from, n));
      });
      covered += part->numel;
    }
    trainable_covered += static_cast<int64_t>(u.trainable.params.size());
    unit_of_[module] = units_.size();
    units_.push_back(std::move(u));
  }
  int64_t total = 0;
  for (const auto& p : m->parameters()) total += p.numel();
  if (covered != total || trainable_covered != static_cast<int64_t>(trainable.size()))
    throw Error("ZeRO-3: the units cover " + std::to_string(covered) + " of the model's " + std::to_string(total) +
                " parameters (" + std::to_string(trainable_covered) + " of " + std::to_string(trainable.size()) +
                " trainable tensors)");
  cut_buckets(bucket_bytes);
  // Backward's schedule: the units gradients pass through, those from the first trainable one on.
  const auto first =
      std::find_if(units_.begin(), units_.end(), [](const Unit& u) { return !u.trainable.params.empty(); });
  for (auto i = static_cast<int64_t>(units_.size()) - 1; i >= first - units_.begin(); --i)
    backward_order_.push_back(static_cast<size_t>(i));
  for (size_t i = 0; i < units_.size(); ++i) forward_order_.push_back(i);
}

// The runners go with this object (they call into it); the model is left holding placeholders, its
// values only in the chunks this object owned: a run's last weights are in its output folder.
Zero3Params::~Zero3Params() {
  model_->model->run_block = model_->model->run_part = nullptr;
  model_->model->vision_model->run_block = model_->model->vision_model->run_part = nullptr;
}

void Zero3Params::lay_out(Part& part, const std::vector<ZeroPieceRun>& runs, int64_t world) {
  part.offsets.clear();
  part.pieces.clear();
  int64_t at = 0, shard_at = 0;
  for (const auto& run : runs) {
    Part::Piece piece{run.first, run.end, at, 0, shard_at};
    int64_t numel = 0;
    for (size_t s = run.first; s < run.end; ++s) {
      part.offsets.push_back(at + numel);
      numel += part.params[s].numel();
    }
    piece.padded = columns(numel, world) * world;
    at += piece.padded;
    shard_at += piece.padded / world;
    part.pieces.push_back(piece);
  }
  part.padded = at;
}

template <typename F>
void Zero3Params::for_each_owned(const Part& part, F f) const {
  for (const auto& piece : part.pieces) {
    const int64_t chunk = piece.padded / group_.size(), begin = piece.offset + chunk * group_.rank();
    for (size_t s = piece.first; s < piece.end; ++s) {
      const int64_t lo = std::max(begin, part.offsets[s]),
                    hi = std::min(begin + chunk, part.offsets[s] + part.params[s].numel());
      if (lo < hi) f(s, lo - part.offsets[s], piece.shard_offset + lo - begin, hi - lo);
    }
  }
}

void Zero3Params::cut_buckets(int64_t bucket_bytes) {
  bucket_of_unit_.assign(units_.size(), -1);
  for (size_t u = units_.size(); u-- > 0;) {
    std::vector<int64_t> numel;
    for (const auto& piece : units_[u].trainable.pieces) numel.push_back(piece.padded);
    for (auto& cut : cut_unit_buckets(numel, group_.size(), bucket_bytes)) {
      bucket_of_unit_[u] = static_cast<int64_t>(buckets_.size());
      buckets_.push_back(std::move(cut));
      unit_of_bucket_.push_back(u);
    }
  }
}

GradientLayout Zero3Params::trainable_layout() const {
  const int64_t world = group_.size();
  GradientLayout layout;
  for (size_t b = 0; b < buckets_.size(); ++b) {
    const auto& cut = buckets_[b];
    const auto& part = units_[unit_of_bucket_[b]].trainable;
    // Row r of the bucket: each block's columns of row r of its piece, cut at its parameters.
    GradientLayout::Bucket bucket;
    bucket.numel = world * cut.cols;
    for (int64_t r = 0; r < world; ++r) {
      int64_t row = r * cut.cols;
      for (const auto& block : cut.blocks) {
        const auto& piece = part.pieces[block.piece];
        const int64_t begin = piece.offset + r * (piece.padded / world) + block.from, end = begin + block.cols;
        for (size_t s = piece.first; s < piece.end; ++s) {
          const int64_t lo = std::max(begin, part.offsets[s]),
                        hi = std::min(end, part.offsets[s] + part.params[s].numel());
          if (lo < hi)
            bucket.segments.push_back(
                {static_cast<size_t>(part.trainable_index[s]), lo - part.offsets[s], hi - lo, row + lo - begin});
        }
        row += block.cols;
      }
    }
    layout.buckets.push_back(std::move(bucket));
  }
  return layout;
}

void Zero3Params::release_all(ZeroShards& zero) {
  if (zero.bucket_count() != buckets_.size())
    throw Error("ZeRO-3: the gradient shards were not built with trainable_layout()");
  zero_ = &zero;
  for (size_t u = 0; u < units_.size(); ++u) units_[u].state = 2;  // the whole model is there now
  for (size_t u = 0; u < units_.size(); ++u) release(u);
  const model::BlockRunner runner = [this](torch::nn::Module& m, const model::BlockForward& f, const torch::Tensor& h) {
    return run(m, f, h);
  };
  model_->model->run_block = model_->model->run_part = runner;
  model_->model->vision_model->run_block = model_->model->vision_model->run_part = runner;
}

torch::Tensor Zero3Params::run(torch::nn::Module& m, const model::BlockForward& f, const torch::Tensor& h) {
  const auto it = unit_of_.find(&m);
  if (it == unit_of_.end()) throw Error("ZeRO-3: a module outside the units ran");
  if (whole_) return f(h);
  const size_t u = it->second;
  return checkpointed(m, f, h, BlockScope{[this, u](bool recompute) { use(u, recompute); }, [] {}});
}

size_t Zero3Params::unit_at(int64_t position) const {
  return (backward_ ? backward_order_ : forward_order_)[static_cast<size_t>(position)];
}

void Zero3Params::use(size_t u, bool recompute) {
  if (recompute != backward_)
    throw Error("ZeRO-3: " + units_[u].name + (recompute ? " recomputed before" : " run after") + " the forward's end");
  const auto& order = backward_ ? backward_order_ : forward_order_;
  const auto at = std::find(order.begin(), order.end(), u);
  if (at == order.end()) throw Error("ZeRO-3: " + units_[u].name + " is not in the backward schedule");
  const auto position = static_cast<int64_t>(at - order.begin());
  if (position < cursor_) {
    if (units_[u].state == 2) return;  // used again while still gathered (lm_head for two losses)
    throw Error("ZeRO-3: " + units_[u].name + " used out of the schedule");
  }
  visit(position);
}

void Zero3Params::visit(int64_t position) {
  const auto& order = backward_ ? backward_order_ : forward_order_;
  while (cursor_ < position) {
    if (cursor_ >= 0) {
      const size_t done = unit_at(cursor_);
      release(done);
      if (backward_ && bucket_of_unit_[done] >= 0) zero_->flush_through(static_cast<size_t>(bucket_of_unit_[done]));
    }
    cursor_ += 1;
    for (int64_t k = 0; k <= prefetch_ && cursor_ + k < static_cast<int64_t>(order.size()); ++k)
      if (units_[unit_at(cursor_ + k)].state == 0) issue(unit_at(cursor_ + k));
    if (!backward_) peak_forward_ = std::max(peak_forward_, gathered_now());
  }
  if (units_[unit_at(position)].state == 1) install(unit_at(position));
}

void Zero3Params::issue(size_t u) {
  auto& unit = units_[u];
  for (auto* part : {&unit.trainable, &unit.frozen}) {
    if (part->params.empty()) continue;
    part->flat = torch::empty({part->padded}, part->shard.options());
    gathered_bytes_ += bytes_of(part->flat);
    for (const auto& piece : part->pieces) {
      auto into = part->flat.narrow(0, piece.offset, piece.padded);
      auto mine = part->shard.narrow(0, piece.shard_offset, piece.padded / group_.size());
      part->works.push_back(gathers_->_allgather_base(into, mine));
    }
  }
  peak_gathered_bytes_ = std::max(peak_gathered_bytes_, gathered_bytes_);
  unit.state = 1;
}

void Zero3Params::install(size_t u) {
  auto& unit = units_[u];
  torch::NoGradGuard no_grad;
  for (auto* part : {&unit.trainable, &unit.frozen}) {
    if (part->params.empty()) continue;
    for (auto& work : part->works) group_.wait(work, "parameter all-gather (" + unit.name + ")");
    part->works.clear();
    for (size_t s = 0; s < part->params.size(); ++s)
      part->params[s].set_data(
          part->flat.narrow(0, part->offsets[s], part->params[s].numel()).view(part->params[s].sizes()));
  }
  unit.state = 2;
}

void Zero3Params::release(size_t u) {
  auto& unit = units_[u];
  if (unit.state == 0) return;
  torch::NoGradGuard no_grad;
  for (auto* part : {&unit.trainable, &unit.frozen}) {
    if (part->params.empty()) continue;
    for (auto& work : part->works) group_.wait(work, "parameter all-gather (" + unit.name + ")");
    part->works.clear();
    // The shape stays (autograd and the layers read it); the storage is one shared element.
    const auto none = torch::zeros({}, part->shard.options());
    for (auto& p : part->params) p.set_data(none.expand(p.sizes()));
    gathered_bytes_ -= bytes_of(part->flat);
    part->flat = torch::Tensor();
  }
  unit.state = 0;
}

int64_t Zero3Params::gathered_now() const {
  return std::count_if(units_.begin(), units_.end(), [](const Unit& u) { return u.state != 0; });
}

void Zero3Params::begin_micro() {
  backward_ = false;
  cursor_ = -1;
}

void Zero3Params::end_forward() {
  if (whole_) return;
  visit(static_cast<int64_t>(forward_order_.size()) - 1);
  for (size_t u = 0; u < units_.size(); ++u) release(u);
  backward_ = true;
  cursor_ = -1;
}

void Zero3Params::end_backward() {
  if (whole_) return;
  if (!backward_order_.empty()) visit(static_cast<int64_t>(backward_order_.size()) - 1);
  for (size_t u = 0; u < units_.size(); ++u) release(u);
  zero_->flush_through(std::numeric_limits<size_t>::max());
  backward_ = false;
  cursor_ = -1;
}

void Zero3Params::take_masters(const ZeroShards& zero) {
  torch::NoGradGuard no_grad;
  for (size_t b = 0; b < buckets_.size(); ++b) {
    auto& part = units_[unit_of_bucket_[b]].trainable;
    int64_t row = 0;
    for (const auto& block : buckets_[b].blocks) {
      const auto& piece = part.pieces[block.piece];
      part.shard.narrow(0, piece.shard_offset + block.from, block.cols)
          .copy_(zero.owned_master(b).narrow(0, row, block.cols));
      row += block.cols;
    }
  }
}

void Zero3Params::write_back(size_t u) {
  torch::NoGradGuard no_grad;
  auto& unit = units_[u];
  for (auto* part : {&unit.trainable, &unit.frozen}) {
    for (const auto& piece : part->pieces) {
      const int64_t chunk = piece.padded / group_.size();
      part->shard.narrow(0, piece.shard_offset, chunk)
          .copy_(part->flat.narrow(0, piece.offset + chunk * group_.rank(), chunk));
    }
  }
}

Zero3Params::Whole::Whole(Zero3Params& z, bool write_back) : z_(z), write_back_(write_back) {
  for (size_t u = 0; u < z_.units_.size(); ++u)
    if (z_.units_[u].state == 0) z_.issue(u);
  for (size_t u = 0; u < z_.units_.size(); ++u)
    if (z_.units_[u].state == 1) z_.install(u);
  z_.whole_ = true;
}

Zero3Params::Whole::~Whole() {
  for (size_t u = 0; u < z_.units_.size(); ++u) {
    if (write_back_) z_.write_back(u);
    z_.release(u);
  }
  z_.whole_ = false;
}

int64_t Zero3Params::shard_bytes() const {
  int64_t total = 0;
  for (const auto& u : units_) total += bytes_of(u.trainable.shard) + bytes_of(u.frozen.shard);
  return total;
}

}  // namespace qalign::train
