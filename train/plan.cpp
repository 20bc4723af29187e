#include "train/plan.h"

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <numeric>
#include <sstream>

#include "data/dataset_mix.h"
#include "data/sampler.h"
#include "data/video.h"
#include "qalign/base/error.h"
#include "qalign/base/log.h"
#include "qalign/base/text.h"
#include "qalign/conversation.h"
#include "qalign/distributed/buckets.h"
#include "qalign/distributed/job_size.h"
#include "qalign/label_files.h"
#include "qalign/model/owl2.h"
#include "qalign/tokenizer.h"
#include "train/freeze.h"
#include "train/lora_training.h"
#include "train/zero3_buckets.h"
#include "train/zero3_units.h"

namespace qalign::train {

namespace {

// Answer tokens a sample supervises ("The quality of the image is good." and </s>, with room):
// the rows the output layer and its float32 softmax run on.
constexpr int64_t kAnswerTokens = 16;

int64_t round_up(int64_t n, int64_t w) { return (n + w - 1) / w * w; }

// What the recipe trains, read off the model itself built on the meta device (no memory): the
// same freezing and adapters the trainer applies, so the counts are the trainer's.
struct Layout {
  std::vector<torch::Tensor> trainable;  // in the model's parameter order, as the trainer passes them
  struct Unit {
    std::vector<int64_t> trainable;  // each trainable parameter's elements, in the unit's order
    int64_t frozen = 0;
  };
  std::vector<Unit> units;
  int64_t all = 0;
  bool vision_trained = false;   // any parameter of the vision tower
  bool decoder_trained = false;  // any decoder weight itself (not only LoRA adapters)
};

Layout read_layout(const config::TrainConfig& c, const model::ModelConfig& m) {
  const auto dtype = c.bf16 ? torch::kBFloat16 : torch::kFloat32;
  model::Owl2ForCausalLM model(m, torch::TensorOptions().dtype(dtype).device(torch::kMeta));
  if (c.answer_format == "regression") model->attach_score_head();
  if (c.lora_enable) attach_run_adapters(model, c);
  Layout out;
  for (auto& [name, p] : apply_freezing(model, c)) out.trainable.push_back(p);
  std::map<std::string, size_t> index;
  for (const auto& p : model->named_parameters()) {
    const auto [it, fresh] = index.emplace(zero3_unit(p.key()), out.units.size());
    if (fresh) out.units.emplace_back();
    auto& u = out.units[it->second];
    if (p.value().requires_grad())
      u.trainable.push_back(p.value().numel());
    else
      u.frozen += p.value().numel();
    out.all += p.value().numel();
    out.vision_trained =
        out.vision_trained || (p.value().requires_grad() && starts_with(p.key(), "model.vision_model."));
    out.decoder_trained = out.decoder_trained || (p.value().requires_grad() && starts_with(p.key(), "model.layers.") &&
                                                  p.key().find(".lora_") == std::string::npos);
  }
  return out;
}

// The most gradient bytes alive at once in train/zero.cpp for buckets of `numel` elements (in
// launch order): the owned float32 chunks, then each bucket's float32 buffer, the copy sent in the
// communication dtype and the chunk received. Stage 1 fills every buffer before the step's last
// micro-batch sends them all; stage 2 fills one bucket while the one before is in flight.
int64_t zero_gradient_peak(const std::vector<int64_t>& numel, int64_t world, int stage, int64_t comm_size) {
  int64_t live = 0, peak = 0;
  const auto track = [&](int64_t delta) {
    live += delta;
    peak = std::max(peak, live);
  };
  for (const int64_t n : numel) track(4 * round_up(n, world) / world);
  const bool same = comm_size == 4;  // a float32 bucket is sent as it is
  const auto sent = [&](int64_t n) { return (same ? 4 : comm_size) * round_up(n, world); };
  const auto received = [&](int64_t n) { return comm_size * round_up(n, world) / world; };
  const auto launch = [&](int64_t n) {
    if (!same) track(sent(n));
    track(received(n));
    if (!same) track(-4 * round_up(n, world));
  };
  if (stage == 1) {
    for (const int64_t n : numel) track(4 * round_up(n, world));
    for (const int64_t n : numel) launch(n);
    return peak;
  }
  for (size_t i = 0; i < numel.size(); ++i) {
    track(4 * round_up(numel[i], world));
    if (i > 0) track(-sent(numel[i - 1]) - received(numel[i - 1]));
    launch(numel[i]);
  }
  return peak;
}

// Bytes forward keeps for backward at its peak, for `b` samples of `s` positions, `d` bytes per
// element. Per layer and position, fully stored: the hidden-size tensors (norm outputs, q, k, v
// and their rotated copies, attention output, projections, residual sums, the multiway routes'
// copies) count kHidden, the MLP's intermediate-size ones (gate, up, activation, product)
// kIntermediate. Attention is fused (no L×L scores kept). With checkpointing each layer keeps its
// input and one layer's intermediates exist at a time, while it is recomputed; backward adds the
// gradient flowing between layers. Calibrated on CPU runs of the small preset (tests/test_plan.cpp).
constexpr int64_t kHidden = 14, kIntermediate = 4;
// With the decoder's weights frozen (LoRA), the frozen projections' inputs are not kept for a weight
// gradient: fewer hidden-size tensors (calibrated on the small preset's LoRA runs, stages 0, 2, 3).
constexpr int64_t kHiddenFrozenDecoder = 10;

int64_t activation_bytes(const model::ModelConfig& m, int64_t b, int64_t s, int64_t images, bool checkpointing,
                         bool vision_trained, bool decoder_trained, int64_t d) {
  const auto& v = m.vision;
  const auto& a = m.abstractor;
  const int64_t patches = m.num_patches() + 1;  // with the class token
  const int64_t hidden = decoder_trained ? kHidden : kHiddenFrozenDecoder;
  const int64_t decoder_layer = b * s * (hidden * m.hidden_size + kIntermediate * m.intermediate_size) * d;
  // A frozen vision tower sees nothing that needs a gradient (pixels, frozen weights): autograd
  // keeps none of it.
  const int64_t vision_layers = vision_trained ? v.num_hidden_layers : 0;
  const int64_t vision_layer =
      vision_trained ? b * images * patches * (kHidden * v.hidden_size + kIntermediate * v.intermediate_size) * d : 0;
  const int64_t decoder_inputs = m.num_hidden_layers * b * s * m.hidden_size * d;
  const int64_t vision_inputs = vision_layers * b * images * patches * v.hidden_size * d;
  // The abstractor runs without checkpointing: queries attend to the image's patches and themselves.
  const int64_t abstractor =
      a.num_hidden_layers * b * images *
      (a.num_learnable_queries * (kHidden * a.hidden_size + kIntermediate * a.intermediate_size) +
       2 * (patches + a.num_learnable_queries) * a.hidden_size) *
      d;
  // The output layer's logits at the answer rows, in the compute dtype, float32 and their softmax.
  const int64_t loss = b * kAnswerTokens * m.vocab_size * (d + 8);
  const int64_t flowing = 2 * b * s * m.hidden_size * 4;
  const int64_t layers = checkpointing ? decoder_inputs + vision_inputs + std::max(decoder_layer, vision_layer)
                                       : m.num_hidden_layers * decoder_layer + vision_layers * vision_layer;
  return layers + abstractor + loss + flowing;
}

struct Setting {
  int64_t stage = 0;
  bool offload = false;
  int64_t micro_batch = 1;
};

// Device and host terms of one setting.
class Planner {
 public:
  Planner(const config::TrainConfig& c, const model::ModelConfig& m, int world, int64_t tokens, bool grouped,
          int64_t blocks)
      : c_(c), m_(m), world_(world), tokens_(tokens), grouped_(grouped), blocks_(blocks), layout_(read_layout(c, m)) {
    const auto bucket_bytes = static_cast<int64_t>(c.ddp_bucket_cap_mb * (1 << 20));
    for (const auto& b : distributed::layout_buckets(layout_.trainable, bucket_bytes).buckets)
      buckets_.push_back(b.numel);
    for (const auto& t : layout_.trainable) trainable_ += t.numel();
  }

  int64_t trainable() const { return trainable_; }
  int64_t all() const { return layout_.all; }

  std::pair<MemoryTerms, MemoryTerms> terms(const Setting& s) const {
    const int64_t d = c_.bf16 ? 2 : 4, w = world_;
    MemoryTerms dev, host;
    // Stage 3 recomputes every unit in backward, whatever gradient_checkpointing says.
    const bool checkpointing = c_.gradient_checkpointing || s.stage == 3;
    dev.activations = activation_bytes(m_, s.micro_batch, tokens_, blocks_, checkpointing, layout_.vision_trained,
                                       layout_.decoder_trained, d);
    int64_t owned_grad = 0;  // the float32 shard offload moves to the host
    if (s.stage == 0) {
      dev.parameters = layout_.all * d;
      dev.masters = c_.bf16 ? 4 * trainable_ : 0;
      // The masters' gradients, and the all-reduce's bucket buffers where there is a process group.
      dev.gradients = 4 * trainable_ + (grouped_ ? 4 * trainable_ : 0);
      dev.optimizer = 8 * trainable_;
    } else if (s.stage < 3) {
      dev.parameters = layout_.all * d;
      int64_t chunks = 0, owned = 0;
      for (const int64_t n : buckets_) {
        chunks += round_up(n, w) / w;
        owned += std::min(round_up(n, w) / w, n);  // rank 0's chunk: the padding sits at the end
      }
      dev.masters = 4 * chunks;
      dev.optimizer = 8 * owned;
      const int64_t comm = c_.zero_communication_dtype == "bfloat16" ? 2 : 4;
      dev.gradients = zero_gradient_peak(buckets_, w, static_cast<int>(s.stage), comm);
      owned_grad = 4 * chunks;
      // After the step each bucket's chunk is gathered into the parameters, two buckets at a time.
      for (size_t i = 0; i < buckets_.size(); ++i) {
        int64_t pair = 0;
        for (size_t j = i; j < std::min(i + 2, buckets_.size()); ++j)
          pair += (round_up(buckets_[j], w) + round_up(buckets_[j], w) / w) * d;
        dev.buffers = std::max(dev.buffers, pair);
      }
    } else {
      // The trainable parameters padded in pieces, the frozen ones of a unit together; gradients
      // reduced as stage 2 reduces them, in each unit's buckets (train/zero3_buckets.h).
      const auto bucket_bytes = static_cast<int64_t>(c_.ddp_bucket_cap_mb * (1 << 20));
      int64_t shard = 0, trainable_shard = 0, owned = 0;
      std::vector<int64_t> unit_buckets, unit_whole;
      int64_t largest_trainable = 0;  // elements of the unit with the most trainable ones
      for (auto u = layout_.units.rbegin(); u != layout_.units.rend(); ++u) {
        int64_t trainable_padded = 0;
        std::vector<int64_t> pieces;
        for (const auto& run : group_pieces(u->trainable, bucket_bytes)) {
          pieces.push_back(run.numel);
          trainable_shard += columns(run.numel, w);
          owned += std::min(columns(run.numel, w), run.numel);  // rank 0's chunk: the padding sits at the end
          trainable_padded += columns(run.numel, w) * w;
        }
        shard += columns(u->frozen, w);
        for (const auto& b : cut_unit_buckets(pieces, w, bucket_bytes)) unit_buckets.push_back(w * b.cols);
        unit_whole.push_back(trainable_padded + round_up(u->frozen, w));
        largest_trainable = std::max(largest_trainable, trainable_padded);
      }
      // A trained parameter's owned values are its float32 masters, unless those are offloaded
      // (then the device keeps a chunk in the compute dtype too).
      if (s.offload) shard += trainable_shard;
      dev.parameters = shard * d;
      owned_grad = 4 * trainable_shard;
      const int64_t comm = c_.zero_communication_dtype == "bfloat16" ? 2 : 4;
      dev.gradients = zero_gradient_peak(unit_buckets, w, 2, comm);
      dev.masters = 4 * trainable_shard;
      dev.optimizer = 8 * owned;
      // The units gathered at once are the one running and the next `zero3_prefetch_blocks` in
      // the schedule: the heaviest run of that many neighbours (forward's order, or backward's,
      // its reverse), not the heaviest units wherever they sit (embed_tokens and lm_head, at the
      // two ends, are never gathered together).
      const auto window = std::min<size_t>(static_cast<size_t>(c_.zero3_prefetch_blocks) + 1, unit_whole.size());
      for (size_t i = 0; i + window <= unit_whole.size(); ++i)
        dev.buffers = std::max(
            dev.buffers, d * std::accumulate(unit_whole.begin() + static_cast<std::ptrdiff_t>(i),
                                             unit_whole.begin() + static_cast<std::ptrdiff_t>(i + window), int64_t{0}));
      // Backward gives a unit's trainable parameters their whole gradients, in the compute dtype,
      // before its buckets take them in: at most one unit's at a time.
      dev.buffers += largest_trainable * d;
    }
    if (s.offload && s.stage > 0) {
      host.masters = std::exchange(dev.masters, 0);
      host.optimizer = std::exchange(dev.optimizer, 0);
      host.gradients = owned_grad;
      dev.gradients -= owned_grad;
    }
    for (auto* t : {&dev, &host})
      t->total = t->parameters + t->gradients + t->masters + t->optimizer + t->activations + t->buffers;
    return {dev, host};
  }

  // What the CUDA context and libraries take beside the tensors (0 when planning for the CPU).
  int64_t headroom(const Setting& s, int64_t memory) const {
    if (c_.device == "cpu") return 0;
    if (c_.device_memory_headroom_mb >= 0) return static_cast<int64_t>(c_.device_memory_headroom_mb * (1 << 20));
    const int64_t communicators = grouped_ ? (s.stage == 3 ? 2 : 1) : 0;
    return (int64_t{512} << 20) + (int64_t{64} << 20) + communicators * (int64_t{256} << 20) + memory / 20;
  }
  int64_t need(const Setting& s, int64_t memory) const { return terms(s).first.total + headroom(s, memory); }

  bool fits(const Setting& s, int64_t memory) const { return need(s, memory) <= memory; }

  // The largest micro-batch that fits with this stage and offload; 0 if none.
  int64_t max_micro_batch(Setting s, int64_t memory) const {
    s.micro_batch = 1;
    if (!fits(s, memory)) return 0;
    int64_t lo = 1, hi = 2;
    for (s.micro_batch = hi; fits(s, memory) && hi < (int64_t{1} << 20); s.micro_batch = hi) lo = hi, hi *= 2;
    while (hi - lo > 1) {
      s.micro_batch = (lo + hi) / 2;
      (fits(s, memory) ? lo : hi) = s.micro_batch;
    }
    return lo;
  }

 private:
  const config::TrainConfig& c_;
  const model::ModelConfig& m_;
  int world_;
  int64_t tokens_;
  bool grouped_;
  int64_t blocks_;  // visual blocks per sample (pictures or frames) through the vision tower
  Layout layout_;
  std::vector<int64_t> buckets_;
  int64_t trainable_ = 0;
};

std::string setting_text(const Setting& s, bool offload_changed) {
  std::string out = "zero_stage=" + std::to_string(s.stage);
  if (offload_changed || s.offload) out += std::string(" offload_optimizer=") + (s.offload ? "cpu" : "none");
  return out;
}

std::string size_text(int64_t bytes) {
  std::ostringstream out;
  out.precision(bytes >= (int64_t{10} << 30) ? 1 : 2);
  if (bytes < (int64_t{1} << 30))
    out << std::fixed << static_cast<double>(bytes) / (1 << 20) << " MiB";
  else
    out << std::fixed << static_cast<double>(bytes) / (1 << 30) << " GiB";
  return out.str();
}

}  // namespace

SampleSize sample_size(const config::TrainConfig& c, const model::ModelConfig& m,
                       const std::vector<TrainingRecord>& records) {
  // Videos count their sampled frames, from the headers of the first few (the longest of those
  // stands for every video); a header that cannot be read counts one block. Videos are told by
  // name here: opening every record's file would cost minutes on a large set.
  constexpr size_t kProbedVideos = 64;
  int64_t frames = 0;
  size_t probed = 0;
  for (const auto& r : records) {
    if (!r.named_as_video() || probed++ >= kProbedVideos) continue;
    try {
      frames = std::max(frames, data::header_sampled_frames(r.paths.at(0)));
    } catch (const Error& e) {
      log::warn("plan: ", e.what(), "; counted as one frame");
    }
  }
  const auto blocks = [&](const TrainingRecord& r) {
    return r.named_as_video() ? std::max<int64_t>(frames, 1) : static_cast<int64_t>(r.images.size());
  };
  // Tokenizing a large set takes long; the longest in tokens is among the longest in words and
  // visual tokens.
  constexpr size_t kCandidates = 64;
  std::vector<std::pair<int64_t, size_t>> weight;
  for (size_t i = 0; i < records.size(); ++i) {
    std::vector<std::string> values;
    for (const auto& t : records[i].conversations) values.push_back(t.value);
    weight.push_back({std::abs(data::modality_length(values, false)) + blocks(records[i]) * m.tokens_per_image(), i});
  }
  const size_t n = std::min(kCandidates, weight.size());
  std::partial_sort(weight.begin(), weight.begin() + static_cast<std::ptrdiff_t>(n), weight.end(), std::greater<>());
  const Tokenizer tokenizer(c.model_name_or_path);
  SampleSize size{0, 1};
  for (size_t k = 0; k < n; ++k) {
    const auto& r = records[weight[k].second];
    const auto sample = build_supervised_sample(tokenizer, r.conversations, r.has_image(), c.model_max_length);
    const int64_t b = blocks(r);
    // The placeholder gives way to each block's visual tokens.
    size.tokens =
        std::max(size.tokens, static_cast<int64_t>(sample.input_ids.size()) + b * m.tokens_per_image() - (b ? 1 : 0));
  }
  for (const auto& r : records) size.visual_blocks = std::max(size.visual_blocks, blocks(r));
  return size;
}

SampleSize sample_size(const config::TrainConfig& c, const model::ModelConfig& m) {
  const SampleSize fallback{c.model_max_length + m.tokens_per_image() - 1, 1};
  try {
    std::vector<TrainingRecord> records;
    for (const auto& spec : c.data_path) {
      const auto source = data::parse_dataset_source(spec);
      if (!std::filesystem::exists(source.path)) return fallback;
      auto part = read_training_records(source.path, c.image_folder);
      records.insert(records.end(), std::make_move_iterator(part.begin()), std::make_move_iterator(part.end()));
    }
    return records.empty() ? fallback : sample_size(c, m, records);
  } catch (const Error& e) {
    log::warn("plan: ", e.what(), "; counting model_max_length tokens per sample");
    return fallback;
  }
}

Plan plan_training(const config::TrainConfig& c, const model::ModelConfig& m, int world_size, int64_t device_memory,
                   int64_t tokens, bool process_group, int64_t visual_blocks) {
  // Bounded as qalign launch bounds it, so that sizes times ranks stay inside 64 bits.
  if (world_size < 1 || world_size > distributed::kMaxWorldSize)
    fail("plan", "world size",
         "must be 1 to " + std::to_string(distributed::kMaxWorldSize) + ", got " + std::to_string(world_size));
  if (c.offload_optimizer == "cpu" && c.zero_stage == 0)
    fail("training config", "offload_optimizer", "needs zero_stage 1 or more");
  Plan p;
  p.world_size = world_size;
  p.zero_stage = c.zero_stage;
  p.offload_optimizer = c.offload_optimizer;
  p.micro_batch = c.per_device_train_batch_size;
  const auto size = tokens > 0 ? SampleSize{tokens, std::max<int64_t>(visual_blocks, 1)} : sample_size(c, m);
  p.sequence_tokens = size.tokens;
  p.visual_blocks = size.visual_blocks;
  p.device_memory = device_memory;
  const Planner planner(c, m, world_size, p.sequence_tokens, process_group, p.visual_blocks);
  p.trainable_parameters = planner.trainable();
  p.all_parameters = planner.all();
  const Setting asked{c.zero_stage, c.offload_optimizer == "cpu", c.per_device_train_batch_size};
  std::tie(p.device_per_rank, p.host_per_rank) = planner.terms(asked);
  p.device_headroom = planner.headroom(asked, device_memory);
  p.fits = planner.fits(asked, device_memory);
  p.max_micro_batch = planner.max_micro_batch(asked, device_memory);
  if (p.fits) {
    p.advice = "fits as configured";
    return p;
  }
  // Cheapest first: more sharding, then the host, then smaller micro-batches.
  std::vector<Setting> tries;
  for (int64_t stage = asked.stage + 1; stage <= 3; ++stage) tries.push_back({stage, asked.offload, asked.micro_batch});
  if (!asked.offload)
    for (int64_t stage = std::max<int64_t>(asked.stage, 1); stage <= 3; ++stage)
      tries.push_back({stage, true, asked.micro_batch});
  for (const auto& s : tries)
    if (planner.fits(s, device_memory)) {
      p.advice = "set " + setting_text(s, s.offload != asked.offload) + " (device need " +
                 size_text(planner.need(s, device_memory)) + ")";
      return p;
    }
  const int64_t global = asked.micro_batch * c.gradient_accumulation_steps;
  std::vector<Setting> settings{asked};
  settings.insert(settings.end(), tries.begin(), tries.end());
  for (auto s : settings) {
    const int64_t most = planner.max_micro_batch(s, device_memory);
    for (s.micro_batch = std::min(most, asked.micro_batch - 1); s.micro_batch >= 1; --s.micro_batch) {
      if (global % s.micro_batch != 0) continue;  // keeps the global batch exactly
      p.advice =
          "set " +
          (s.stage == asked.stage && s.offload == asked.offload ? std::string()
                                                                : setting_text(s, s.offload != asked.offload) + " ") +
          "per_device_train_batch_size=" + std::to_string(s.micro_batch) +
          " gradient_accumulation_steps=" + std::to_string(global / s.micro_batch) + " (device need " +
          size_text(planner.need(s, device_memory)) + ")";
      return p;
    }
  }
  const auto least = planner.need({3, true, 1}, device_memory);
  p.nothing_fits = true;
  p.advice = "does not fit even with zero_stage=3 offload_optimizer=cpu per_device_train_batch_size=1: that needs " +
             size_text(least) + " per device, this one has " + size_text(device_memory);
  return p;
}

std::string describe(const Plan& p) {
  std::ostringstream out;
  out << "memory plan: " << p.world_size << " rank" << (p.world_size > 1 ? "s" : "") << ", zero_stage " << p.zero_stage
      << ", offload_optimizer " << p.offload_optimizer << ", micro-batch " << p.micro_batch << " x "
      << p.sequence_tokens << " tokens; " << p.trainable_parameters << " of " << p.all_parameters
      << " parameters trained\n";
  out << "  per rank         device        host\n";
  const auto row = [&](const char* name, int64_t dev, int64_t host) {
    out << "  " << name << std::string(14 - std::string(name).size(), ' ');
    const auto cell = [&](int64_t v) {
      const auto s = size_text(v);
      out << std::string(s.size() < 12 ? 12 - s.size() : 0, ' ') << s;
    };
    cell(dev);
    cell(host);
    out << "\n";
  };
  const auto& d = p.device_per_rank;
  const auto& h = p.host_per_rank;
  row("parameters", d.parameters, h.parameters);
  row("gradients", d.gradients, h.gradients);
  row("masters", d.masters, h.masters);
  row("optimizer", d.optimizer, h.optimizer);
  row("activations", d.activations, h.activations);
  row("buffers", d.buffers, h.buffers);
  row("total", d.total, h.total);
  if (p.device_headroom > 0) row("headroom", p.device_headroom, 0);
  if (p.device_memory <= 0) return out.str();  // no device to hold it against (a CPU run)
  out << "  " << (p.fits ? "fits" : "does not fit") << " in " << size_text(p.device_memory)
      << " per device; largest micro-batch " << p.max_micro_batch << "\n  advice: " << p.advice;
  return out.str();
}

}  // namespace qalign::train
