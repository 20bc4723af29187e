#include "train/zero3.h"

#include <algorithm>
#include <limits>

#include "qalign/base/error.h"
#include "train/activation_checkpoint.h"
#include "train/tensor_bytes.h"
#include "train/zero.h"
#include "train/zero3_units.h"

namespace qalign::train {

Zero3Params::Source Zero3Params::from_tensors(io::StateDict tensors) {
  return [tensors = std::move(tensors)](const std::string& name, int64_t offset, torch::Tensor out) {
    const auto it = tensors.find(name);
    if (it == tensors.end()) return false;
    out.copy_(it->second.detach().reshape({-1}).narrow(0, offset, out.numel()));
    return true;
  };
}

Zero3Params::Source Zero3Params::from_model(model::Owl2ForCausalLM& m) {
  io::StateDict params;
  for (const auto& p : m->named_parameters()) params[p.key()] = p.value();
  return from_tensors(std::move(params));
}

Zero3Params::Zero3Params(distributed::ProcessGroup& group, model::Owl2ForCausalLM& m,
                         const std::vector<std::string>& trainable, int64_t prefetch, int64_t bucket_bytes,
                         const Source& source)
    : group_(group),
      gathers_(group.another_backend("zero3-gathers")),
      model_(m),
      prefetch_(prefetch),
      gather_block_bytes_(bucket_bytes) {
  std::map<std::string, torch::nn::Module*> modules;
  for (const auto& item : m->named_modules()) modules[item.key()] = item.value().get();
  std::map<std::string, int64_t> trainable_index;
  for (size_t i = 0; i < trainable.size(); ++i) trainable_index[trainable[i]] = static_cast<int64_t>(i);
  std::map<std::string, size_t> unit_index;
  int64_t trainable_covered = 0;
  for (const auto& item : m->named_parameters()) {
    const auto name = zero3_unit(item.key());
    const auto [at, fresh] = unit_index.emplace(name, units_.size());
    if (fresh) {
      const auto module = modules.find(name);
      if (module == modules.end()) throw Error("ZeRO-3: parameter " + item.key() + " has no module " + name);
      units_.emplace_back();
      units_.back().name = name;
      units_.back().module = module->second;
      unit_of_[module->second] = at->second;
    }
    auto& u = units_[at->second];
    const auto it = trainable_index.find(item.key());
    auto& part = it != trainable_index.end() ? u.trainable : u.frozen;
    if (it != trainable_index.end()) {
      part.trainable_index.push_back(it->second);
      trainable_covered += 1;
    }
    part.names.push_back(item.key());
    part.params.push_back(item.value());
    part.numel += item.value().numel();
    unit_of_parameter_[item.key()] = at->second;
  }
  if (trainable_covered != static_cast<int64_t>(trainable.size()))
    throw Error("ZeRO-3: " + std::to_string(trainable.size() - static_cast<size_t>(trainable_covered)) + " of the " +
                std::to_string(trainable.size()) + " trainable tensors are no parameters of the model");
  const int64_t world = group_.size();
  for (auto& u : units_)
    for (auto* part : {&u.trainable, &u.frozen}) {
      if (part->params.empty()) continue;
      std::vector<int64_t> numel;
      for (const auto& p : part->params) numel.push_back(p.numel());
      lay_out(*part,
              part == &u.trainable ? group_pieces(numel, bucket_bytes)
                                   : std::vector<ZeroPieceRun>{{0, numel.size(), part->numel}},
              world);
      part->shard = torch::zeros({part->padded / world}, part->params.front().options().requires_grad(false));
      fill(*part, source, /*every=*/true);
    }
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

// Each owned range lies in one parameter: the source fills it in place.
void Zero3Params::fill(Part& part, const Source& source, bool every) {
  torch::NoGradGuard no_grad;
  for_each_owned(part, [&](size_t s, int64_t from, int64_t at, int64_t n) {
    if (!source(part.names[s], from, part.shard.narrow(0, at, n)) && every)
      throw Error("ZeRO-3: no values for parameter " + part.names[s]);
  });
}

void Zero3Params::load(const Source& source) {
  torch::NoGradGuard no_grad;
  for (size_t u = 0; u < units_.size(); ++u) {
    auto& trained = units_[u].trainable;
    // Where the masters are the values, the trained part is filled through a chunk of this unit.
    const bool through_masters = !trained.params.empty() && !trained.shard.defined();
    if (through_masters) {
      trained.shard =
          torch::zeros({trained.padded / group_.size()}, trained.params.front().options().requires_grad(false));
      chunk_from_masters(*zero_, u, trained.shard);
    }
    for (auto* part : {&trained, &units_[u].frozen})
      if (!part->params.empty()) fill(*part, source, /*every=*/false);
    if (through_masters) {
      masters_from_chunk(*zero_, u, trained.shard);
      trained.shard = torch::Tensor();
    }
  }
}

template <typename F>
void Zero3Params::for_each_master_block(const ZeroShards& zero, size_t u, F f) const {
  const auto& part = units_[u].trainable;
  for (size_t b = 0; b < buckets_.size(); ++b) {
    if (unit_of_bucket_[b] != u) continue;
    int64_t row = 0;
    for (const auto& block : buckets_[b].blocks) {
      f(zero.owned_master(b).narrow(0, row, block.cols), part.pieces[block.piece], block.from, block.cols);
      row += block.cols;
    }
  }
}

void Zero3Params::masters_from_chunk(const ZeroShards& zero, size_t u, const torch::Tensor& chunk) const {
  for_each_master_block(zero, u, [&](const torch::Tensor& m, const Part::Piece& piece, int64_t from, int64_t cols) {
    m.copy_(chunk.narrow(0, piece.shard_offset + from, cols));
  });
}

void Zero3Params::chunk_from_masters(const ZeroShards& zero, size_t u, const torch::Tensor& chunk) const {
  for_each_master_block(zero, u, [&](const torch::Tensor& m, const Part::Piece& piece, int64_t from, int64_t cols) {
    chunk.narrow(0, piece.shard_offset + from, cols).copy_(m);
  });
}

void Zero3Params::give_masters(ZeroShards& zero) const {
  torch::NoGradGuard no_grad;
  for (size_t u = 0; u < units_.size(); ++u)
    if (units_[u].trainable.shard.defined()) masters_from_chunk(zero, u, units_[u].trainable.shard);
}

void Zero3Params::release_all(ZeroShards& zero) {
  if (zero.bucket_count() != buckets_.size())
    throw Error("ZeRO-3: the gradient shards were not built with trainable_layout()");
  zero_ = &zero;
  // The masters (given these chunks' values) now hold them: a gather rounds them as take_masters
  // would. Offloaded, they live on the host and the device keeps its own chunks.
  if (!zero.offloaded())
    for (auto& u : units_) u.trainable.shard = torch::Tensor();
  for (size_t u = 0; u < units_.size(); ++u) units_[u].state = 2;  // the parameters the model was built with
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
  const size_t u = it->second;
  if (evaluating_) {
    use(u, false);
    return f(h);
  }
  return checkpointed(m, f, h, BlockScope{[this, u](bool recompute) { use(u, recompute); }, [] {}});
}

size_t Zero3Params::unit_at(int64_t position) const {
  return (backward_ ? backward_order_ : forward_order_)[static_cast<size_t>(position)];
}

void Zero3Params::use(size_t u, bool recompute) {
  if (evaluating_) {
    const auto position = static_cast<int64_t>(u);                               // forward order is unit order
    if (cursor_ >= 0 && position < cursor_ && units_[u].state != 2) end_pass();  // the next forward began
    if (cursor_ < 0) start_pass(true);
    visit(position);
    return;
  }
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

void Zero3Params::issue(size_t u, bool with_frozen) {
  auto& unit = units_[u];
  torch::NoGradGuard no_grad;
  const int64_t world = group_.size();
  for (auto* part : {&unit.trainable, &unit.frozen}) {
    if (part->params.empty() || (part == &unit.frozen && !with_frozen)) continue;
    part->flat = torch::empty({part->padded}, part->params.front().options().requires_grad(false));
    gathered_bytes_ += bytes_of(part->flat);
    // Where the masters are the values, this rank's columns go straight to their place in `flat`
    // (rounded as take_masters rounds them) and are gathered in place.
    const bool from_masters = !part->shard.defined();
    if (from_masters)
      for_each_master_block(
          *zero_, u, [&](const torch::Tensor& m, const Part::Piece& piece, int64_t from, int64_t cols) {
            part->flat.narrow(0, piece.offset + group_.rank() * (piece.padded / world) + from, cols).copy_(m);
          });
    const auto elem = static_cast<int64_t>(part->flat.element_size());
    // Gloo gathers into a buffer of the whole output and then copies it out: a unit's frozen part
    // in one gather (a LoRA decoder layer, 0.47 GB at full size) would hold it twice. On the CPU
    // each piece goes in blocks of columns of about a bucket, into the W places they fill.
    const int64_t block = part->flat.is_cpu() ? std::max<int64_t>(1, gather_block_bytes_ / (world * elem)) : 0;
    for (const auto& piece : part->pieces) {
      const int64_t chunk = piece.padded / world;
      auto into = part->flat.narrow(0, piece.offset, piece.padded);
      auto mine = from_masters ? into.narrow(0, group_.rank() * chunk, chunk)
                               : part->shard.narrow(0, piece.shard_offset, chunk);
      if (block == 0 || chunk <= block) {
        part->works.push_back(gathers_->_allgather_base(into, mine));
        continue;
      }
      for (int64_t from = 0; from < chunk; from += block) {
        const int64_t n = std::min(block, chunk - from);
        std::vector<at::Tensor> inputs{mine.narrow(0, from, n)};
        std::vector<std::vector<at::Tensor>> outputs(1);
        for (int64_t r = 0; r < world; ++r) outputs[0].push_back(into.narrow(0, r * chunk + from, n));
        part->works.push_back(gathers_->allgather(outputs, inputs));
      }
    }
  }
  peak_gathered_bytes_ = std::max(peak_gathered_bytes_, gathered_bytes_);
  unit.state = 1;
}

void Zero3Params::install(size_t u) {
  auto& unit = units_[u];
  torch::NoGradGuard no_grad;
  for (auto* part : {&unit.trainable, &unit.frozen}) {
    if (part->params.empty() || !part->flat.defined()) continue;  // not issued (gather_trainable)
    for (auto& work : part->works) group_.wait_and_release(work, "parameter all-gather (" + unit.name + ")");
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
    for (auto& work : part->works) group_.wait_and_release(work, "parameter all-gather (" + unit.name + ")");
    part->works.clear();
    // The shape stays (autograd and the layers read it); the storage is one shared element.
    const auto none = torch::zeros({}, part->params.front().options().requires_grad(false));
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
  visit(static_cast<int64_t>(forward_order_.size()) - 1);
  for (size_t u = 0; u < units_.size(); ++u) release(u);
  backward_ = true;
  cursor_ = -1;
}

void Zero3Params::end_backward() {
  if (!backward_order_.empty()) visit(static_cast<int64_t>(backward_order_.size()) - 1);
  for (size_t u = 0; u < units_.size(); ++u) release(u);
  zero_->flush_through(std::numeric_limits<size_t>::max());
  backward_ = false;
  cursor_ = -1;
}

void Zero3Params::take_masters(const ZeroShards& zero) {
  torch::NoGradGuard no_grad;
  for (size_t u = 0; u < units_.size(); ++u)
    if (units_[u].trainable.shard.defined()) chunk_from_masters(zero, u, units_[u].trainable.shard);
}

size_t Zero3Params::unit_of(const std::string& name) const {
  const auto it = unit_of_parameter_.find(name);
  return it == unit_of_parameter_.end() ? units_.size() : it->second;
}

std::vector<std::pair<std::string, torch::Tensor>> Zero3Params::unit_parameters(size_t u, bool trainable_only) const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto* part : {&units_[u].trainable, &units_[u].frozen})
    if (part == &units_[u].trainable || !trainable_only)
      for (size_t s = 0; s < part->params.size(); ++s) out.emplace_back(part->names[s], part->params[s]);
  return out;
}

void Zero3Params::gather(size_t u) {
  if (units_[u].state == 0) issue(u);
  if (units_[u].state == 1) install(u);
}

void Zero3Params::gather_trainable(size_t u) {
  if (units_[u].state == 0) issue(u, /*with_frozen=*/false);
  if (units_[u].state == 1) install(u);
}

void Zero3Params::drop(size_t u) { release(u); }

// How many ranks start a forward now (this one when `running`).
bool Zero3Params::start_pass(bool running) {
  cursor_ = -1;
  std::vector<torch::Tensor> count{
      torch::full({1}, running ? 1.0f : 0.0f, torch::TensorOptions(group_.device()).dtype(torch::kFloat32))};
  group_.wait(gathers_->allreduce(count), "evaluation forward count");
  return count.front().item<float>() > 0;
}

void Zero3Params::end_pass() {
  visit(static_cast<int64_t>(forward_order_.size()) - 1);
  for (size_t u = 0; u < units_.size(); ++u) release(u);
  cursor_ = -1;
}

Zero3Params::Evaluating::Evaluating(Zero3Params& z) : z_(z) {
  z_.evaluating_ = true;
  z_.cursor_ = -1;
}

Zero3Params::Evaluating::~Evaluating() {
  for (size_t u = 0; u < z_.units_.size(); ++u) z_.release(u);
  z_.evaluating_ = false;
  z_.cursor_ = -1;
}

void Zero3Params::Evaluating::finish() {
  if (z_.cursor_ >= 0) z_.end_pass();
  while (z_.start_pass(false)) z_.end_pass();
}

int64_t Zero3Params::shard_bytes() const {
  int64_t total = 0;
  for (const auto& u : units_) total += bytes_of(u.trainable.shard) + bytes_of(u.frozen.shard);
  return total;
}

}  // namespace qalign::train
