#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>

#include "data/dataset_mix.h"
#include "qalign/base/atomic_file.h"
#include "qalign/base/error.h"
#include "qalign/base/json_file.h"
#include "qalign/base/log.h"
#include "qalign/conversation.h"
#include "qalign/io/checkpoint.h"
#include "qalign/io/lora_folder.h"
#include "qalign/io/safetensors.h"
#include "qalign/io/weight_reader.h"
#include "qalign/io/weights.h"
#include "qalign/preprocessor_config.h"
#include "train/activation_checkpoint.h"
#include "train/checkpointing.h"
#include "train/cpu_memory.h"
#include "train/device.h"
#include "train/freeze.h"
#include "train/grad_clip.h"
#include "train/lora_training.h"
#include "train/optimizer_shards.h"
#include "train/pixel_staging.h"
#include "train/plan.h"
#include "train/regression_loss.h"
#include "train/soft_label_loss.h"
#include "train/stop_signal.h"
#include "train/tensor_bytes.h"

namespace qalign::train {

namespace fs = std::filesystem;

namespace {

// data_path entries are files, or "FILE:WEIGHT" to mix (data/dataset_mix.h). Plain files are
// concatenated in order, so an unshuffled run visits them as written.
std::vector<TrainingRecord> read_records(const config::TrainConfig& c) {
  std::vector<data::DatasetSource> sources;
  bool weighted = false;
  for (const auto& spec : c.data_path) {
    sources.push_back(data::parse_dataset_source(spec));
    weighted = weighted || sources.back().weight != 1.0;
  }
  if (weighted) return data::read_training_mix(sources, c.image_folder, static_cast<uint64_t>(c.seed));
  std::vector<TrainingRecord> all;
  for (const auto& s : sources) {
    auto part = read_training_records(s.path, c.image_folder);
    if (all.empty())  // a million records moved as one buffer, not copied into a second
      all = std::move(part);
    else
      all.insert(all.end(), std::make_move_iterator(part.begin()), std::make_move_iterator(part.end()));
  }
  return all;
}

// HF's param groups: with and without weight decay, and (when visual_abstractor_lr is set) the
// abstractor's own pair at that rate.
std::vector<ParamGroup> param_groups(const std::vector<std::string>& names, const std::vector<torch::Tensor>& params,
                                     const std::set<std::string>& no_decay, const config::TrainConfig& c) {
  std::vector<ParamGroup> groups(4);
  groups[0] = {c.learning_rate, c.weight_decay, {}, {}};
  groups[1] = {c.learning_rate, 0.0, {}, {}};
  const double abstractor_lr = c.visual_abstractor_lr.value_or(c.learning_rate);
  groups[2] = {abstractor_lr, c.weight_decay, {}, {}};
  groups[3] = {abstractor_lr, 0.0, {}, {}};
  for (size_t i = 0; i < names.size(); ++i) {
    const auto& name = names[i];
    const bool abstractor = c.visual_abstractor_lr && name.rfind("model.visual_abstractor.", 0) == 0;
    auto& g = groups[(abstractor ? 2 : 0) + (no_decay.count(name) ? 1 : 0)];
    g.names.push_back(name);
    g.params.push_back(params[i]);
  }
  std::vector<ParamGroup> used;
  for (auto& g : groups)
    if (!g.params.empty()) used.push_back(std::move(g));
  return used;
}

// The conversation template alone, with a picture and a one-word answer, is the shortest sample
// there is: a model_max_length below its length cuts every answer off, so no step could learn.
void check_model_max_length(const Tokenizer& tokenizer, int64_t model_max_length) {
  const auto least = static_cast<int64_t>(
      build_supervised_sample(tokenizer, {{"human", "<|image|>"}, {"gpt", "good"}}, true, int64_t{1} << 20)
          .input_ids.size());
  if (model_max_length < least)
    fail("training config", "model_max_length",
         std::to_string(model_max_length) + " tokens is shorter than the conversation template with a picture and " +
             "a one-word answer (" + std::to_string(least) + " tokens): every answer would be cut off; the authors " +
             "use 2048");
}

bool finite(double v) { return std::isfinite(v); }

// Joining never waits longer than a collective would: the shorter of rendezvous_timeout and
// ddp_timeout, named in the error when it runs out.
distributed::RendezvousTimeout rendezvous_timeout(const config::TrainConfig& c) {
  if (c.ddp_timeout < c.rendezvous_timeout) return {std::chrono::seconds(c.ddp_timeout), "ddp_timeout"};
  return {std::chrono::seconds(c.rendezvous_timeout), "rendezvous_timeout"};
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// A ZeRO-3 rank's chunks of every parameter: from lora_weights' other trainables, else the
// checkpoint (memory-mapped, read chunk by chunk), else the parameters the run created whole
// (adapters, score head) from the same seed on every rank.
Zero3Params::Source checkpoint_chunks(const config::TrainConfig& c, model::Owl2ForCausalLM& m) {
  const auto reader = std::make_shared<const io::WeightReader>(c.model_name_or_path);
  const auto folder = c.lora_enable && !c.lora_weights.empty()
                          ? Zero3Params::from_tensors(io::read_lora_folder(c.lora_weights).non_lora_trainables)
                          : Zero3Params::from_tensors({});
  const auto created = Zero3Params::from_model(m);
  return [reader, folder, created](const std::string& name, int64_t offset, torch::Tensor out) {
    if (folder(name, offset, out)) return true;
    if (!reader->contains(name)) return created(name, offset, out);
    reader->read_into(name, offset, out);
    return true;
  };
}

}  // namespace

Trainer::Trainer(config::TrainConfig config, TrainerOptions options)
    : config_(std::move(config)), options_(std::move(options)) {
  const auto& c = config_;
  torch::manual_seed(static_cast<uint64_t>(c.seed));  // HF's set_seed at the start of a run

  const auto env = distributed::read_launch_env([](const char* name) { return std::getenv(name); });
  // Before any process of the job writes there. Rank 0 holds the lock for its job, so a second
  // job refuses at once while the ranks of one job never refuse one another.
  const bool resuming = !c.resume_from_checkpoint.empty();
  check_output_dir(c.output_dir, c.model_name_or_path, resuming, c.overwrite_output_dir);
  if (env.rank == 0) lock_.emplace(c.output_dir);
  prepare_output_dir(c.output_dir, resuming, c.overwrite_output_dir, env.rank == 0);
  tokenizer_ = std::make_shared<const Tokenizer>(c.model_name_or_path);
  side_files_ = read_model_side_files(c.model_name_or_path);
  check_model_max_length(*tokenizer_, c.model_max_length);
  if (c.level_labels == "soft" || c.answer_format == "regression") level_ids_ = tokenizer_->level_token_ids();
  device_ = training_device(c.device, env);
  at::globalContext().setAllowTF32CuBLAS(c.tf32);
  at::globalContext().setAllowTF32CuDNN(c.tf32);
  std::vector<TrainingRecord> records;
  if (!options_.batches) {
    records = read_records(c);
    if (records.empty()) fail(join(c.data_path), "data_path", "no training records");
  }
  if (!options_.build_model && !options_.batches) check_memory_plan(records, env);
  if (device_.is_cpu()) count_cpu_tensor_bytes();  // the CPU's peak_allocated
  const int64_t resident = resident_bytes();
  const bool measured = reset_peak_resident();
  // Straight into the compute dtype on the device; float32 masters are then taken from those
  // values, as DeepSpeed takes them from the bf16 module.
  const auto dtype = c.bf16 ? torch::kBFloat16 : torch::kFloat32;
  // ZeRO-3 ranks read only their own chunks of the checkpoint (Zero3Params, below): the model is
  // built without parameter storage and never held whole.
  const bool streamed = c.zero_stage == 3 && distributed::has_process_group(env) && !options_.build_model;
  std::optional<CpuPeakScope> loading(std::in_place);
  model_ = options_.build_model ? options_.build_model(dtype, device_)
           : streamed           ? io::load_without_storage(c.model_name_or_path, dtype, device_)
                                : io::load_pretrained(c.model_name_or_path, dtype, device_);
  if (measured)
    log::info("loaded ", c.model_name_or_path, " onto ", device_.str(), ": resident memory +",
              (peak_resident_bytes() - resident) >> 20, " MiB at peak");
  if (!options_.build_model) check_preprocessor_config(c.model_name_or_path, model_->config.vision.image_size);
  if (c.answer_format == "regression") model_->attach_score_head();
  if (c.lora_enable) attach_run_adapters(model_, c);
  model_->train();
  const auto trainable = apply_freezing(model_, c);
  std::vector<torch::Tensor> params;
  for (const auto& [name, p] : trainable) {
    trainable_names_.push_back(name);
    params.push_back(p);
  }
  if (!streamed) {
    report_phase("loading", *loading, env.rank);
    loading.reset();
  }
  const auto bucket_bytes = static_cast<int64_t>(c.ddp_bucket_cap_mb * (1 << 20));
  if (distributed::has_process_group(env)) {
    group_ = std::make_unique<distributed::ProcessGroup>(env, c.ddp_backend, std::chrono::seconds(c.ddp_timeout),
                                                         device_, rendezvous_timeout(c));
    if (group_->device() != device_)
      fail("training config", "ddp_backend",
           "the process group's tensors live on " + group_->device().str() + " but the model on " + device_.str() +
               ": use nccl with device cuda, gloo with device cpu");
    if (!streamed) {  // streamed, every rank reads the same checkpoint and draws the same new parameters
      torch::NoGradGuard no_grad;
      for (auto p : params) group_->broadcast(p);
    }
    if (c.zero_stage > 0) {
      std::optional<GradientLayout> units;
      if (c.zero_stage == 3) {
        zero3_ =
            std::make_unique<Zero3Params>(*group_, model_, trainable_names_, c.zero3_prefetch_blocks, bucket_bytes,
                                          streamed ? checkpoint_chunks(c, model_) : Zero3Params::from_model(model_));
        units = zero3_->trainable_layout();
        if (loading) {
          report_phase("loading", *loading, env.rank);
          loading.reset();
        }
      }
      zero_ = std::make_unique<ZeroShards>(
          *group_, trainable_names_, params,
          ZeroOptions{static_cast<int>(c.zero_stage), bucket_bytes,
                      c.zero_communication_dtype == "bfloat16" ? torch::kBFloat16 : torch::kFloat32,
                      c.offload_optimizer == "cpu"},
          std::move(units));
      if (zero3_) zero3_->give_masters(*zero_);
      if (c.offload_optimizer == "cpu" && device_.is_cuda()) {
        // The launcher's OMP_NUM_THREADS=1 keeps ranks from oversubscribing the cores with
        // compute threads; the offloaded AdamW is this rank's share of them.
        const int threads = host_optimizer_threads(c.offload_optimizer_threads, env.local_world_size);
        at::set_num_threads(threads);
        log::info("rank ", env.rank, ": the offloaded optimizer runs on ", threads, " host threads");
      }
    } else {
      masters_ = std::make_unique<MasterWeights>(trainable, c.bf16);
      ddp_ = std::make_unique<distributed::DataParallel>(
          *group_, params, masters_->masters(), [this](size_t i) { masters_->accumulate_grad(i); }, bucket_bytes);
    }
  } else {
    if (c.zero_stage > 0 || c.offload_optimizer != "none")
      log::warn("zero_stage ", c.zero_stage, " in one process: nothing to shard, the model stays whole on ",
                device_.str(), ": one process without a launcher trains at ZeRO stage 0 without offload (",
                "a process group is needed: qalign launch --nproc-per-node 1 gives one)");
    masters_ = std::make_unique<MasterWeights>(trainable, c.bf16);
  }
  set_activation_checkpointing(model_, c.gradient_checkpointing);
  if (zero3_) {
    zero3_->release_all(*zero_);  // its runners replace checkpointing: every unit is recomputed
    if (!c.gradient_checkpointing && rank() == 0)
      log::info("zero_stage 3 recomputes every unit in backward: activation checkpointing is implied");
  }
  optimizer_ =
      std::make_unique<AdamW>(param_groups(zero_ ? zero_->names() : masters_->names(),
                                           zero_ ? zero_->slices() : masters_->masters(), no_weight_decay(model_), c),
                              AdamWOptions{c.adam_beta1, c.adam_beta2, c.adam_epsilon, c.optim == "adamw_torch_fused"});

  data::LoaderOptions lo;
  lo.batch_size = c.per_device_train_batch_size;
  lo.image_size = model_->config.vision.image_size;
  lo.model_max_length = c.model_max_length;
  lo.num_workers = c.dataloader_num_workers;
  lo.max_skipped_fraction = c.max_skipped_sample_fraction;
  lo.media = MediaBudget{c.max_image_file_mb, c.max_image_decoded_mb};
  lo.pin_memory = device_.is_cuda();
  lo.sampler.shuffle = c.dataloader_shuffle;
  lo.sampler.group_by_modality_length = c.group_by_modality_length;
  lo.sampler.batch_size = c.per_device_train_batch_size;
  lo.sampler.world_size = c.gradient_accumulation_steps * env.world_size;  // the authors' world_size · accumulation
  lo.sampler.rank = env.rank;
  lo.sampler.ranks = env.world_size;
  lo.sampler.seed = static_cast<uint64_t>(c.seed);
  if (options_.batches) {
    loader_ = options_.batches;
  } else {
    loader_ = std::make_shared<data::TrainLoader>(std::move(records), tokenizer_, lo);
  }

  const int64_t accumulation = c.gradient_accumulation_steps;
  steps_per_epoch_ = (loader_->batches_per_epoch() + accumulation - 1) / accumulation;
  const double steps = c.max_steps > 0 ? static_cast<double>(c.max_steps)
                                       : std::ceil(c.num_train_epochs * static_cast<double>(steps_per_epoch_));
  // A bound far past any real run (30 years at a step per millisecond) that keeps the count, and
  // every step number derived from it, exact.
  constexpr double kMaxTotalSteps = 1e12;
  if (!(steps >= 1 && steps <= kMaxTotalSteps))
    fail("training config", c.max_steps > 0 ? "max_steps" : "num_train_epochs",
         "gives " + nlohmann::json(steps).dump() + " optimizer steps (" + std::to_string(steps_per_epoch_) +
             " per epoch); expected 1 to 1e12");
  const auto total = static_cast<int64_t>(steps);
  state_.schedule = LrSchedule::make(c.lr_scheduler_type, c.warmup_ratio, total);

  if (c.eval_steps > 0) {
    evaluator_ = std::make_unique<Evaluator>(c.eval_data_paths, c.image_folder, Task::kQuality,
                                             static_cast<int>(c.per_device_eval_batch_size),
                                             Scorer(model_, Tokenizer(c.model_name_or_path), PromptStyle::kEval,
                                                    parse_readout(c.answer_format, "answer_format")),
                                             MediaBudget{c.max_image_file_mb, c.max_image_decoded_mb});
    model_->train();  // the Scorer switched it to eval mode
  }

  int64_t parameters = 0;
  for (const auto& t : params) parameters += t.numel();
  log::info("training ", trainable_names_.size(), " parameter tensors (", parameters, " parameters) on ", device_.str(),
            ", ", loader_->size(), " samples: ", total, " steps of ", env.world_size, " x ",
            c.per_device_train_batch_size, " x ", accumulation, " samples, ", steps_per_epoch_,
            " steps per epoch, warm-up ", state_.schedule.warmup_steps, ", ",
            c.bf16 ? "bfloat16 compute with float32 masters" : "float32",
            zero_ ? ", ZeRO stage " + std::to_string(c.zero_stage) +
                        (c.offload_optimizer == "cpu" ? ", optimizer state in host memory" : "")
                  : std::string());
}

Trainer::~Trainer() = default;

void Trainer::check_memory_plan(const std::vector<TrainingRecord>& records, const distributed::LaunchEnv& env) const {
  // What this process will run: without a process group there is no ZeRO and no offload.
  auto c = config_;
  if (!distributed::has_process_group(env)) {  // the constructor says so when it builds the state
    c.zero_stage = 0;
    c.offload_optimizer = "none";
  }
  const auto model = model::ModelConfig::from_json_file((fs::path(c.model_name_or_path) / "config.json").string());
  // Free memory, before the model loads: what other processes and the CUDA context hold is not ours.
  const int64_t memory = device_free_memory(device_);
  const auto size = sample_size(c, model, records);
  const auto plan = plan_training(c, model, env.world_size, memory, size.tokens, distributed::has_process_group(env),
                                  size.visual_blocks);
  if (env.rank == 0) log::info(describe(plan));
  if (device_.is_cuda())  // what the plan's headroom stands for, measured: the device check records it
    log::info("rank ", env.rank, ": ", (device_total_memory(device_) - memory) >> 20, " MiB of ", device_.str(),
              " held before loading (CUDA context, other processes); planned headroom ", plan.device_headroom >> 20,
              " MiB");
  if (!device_.is_cuda() || plan.fits || !c.memory_plan_check) return;
  fail("training config", "per_device_train_batch_size",
       "this recipe is planned at " + std::to_string(plan.device_per_rank.total >> 20) + " MiB per GPU, above the " +
           std::to_string(memory >> 20) + " MiB free on " + device_.str() + ". " + plan.advice +
           " (memory_plan_check=false runs it anyway)");
}

std::vector<Trainer::MicroBatch> Trainer::step_batches() {
  std::vector<MicroBatch> out;
  const auto fetch = [&] {
    out.clear();
    while (static_cast<int64_t>(out.size()) < config_.gradient_accumulation_steps) {
      const auto asked = std::chrono::steady_clock::now();
      auto batch = loader_->next();
      input_wait_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - asked).count();
      if (!batch) break;
      out.push_back({std::move(batch), 1.0});
    }
  };
  // Row 0: whether this rank has micro-batch k; row 1: its answer tokens (the loss's targets).
  const auto exchange = [&] {
    auto counts = torch::zeros({2, config_.gradient_accumulation_steps}, torch::kInt64);
    for (size_t k = 0; k < out.size(); ++k) {
      const auto& labels = out[k].batch->text.labels;
      counts[0][k] = 1;
      counts[1][k] = labels.narrow(1, 1, labels.size(1) - 1).ne(kIgnoreIndex).sum();
    }
    auto local = counts.clone();
    if (group_) group_->allreduce_sum(counts);
    return std::pair{local, counts};
  };
  fetch();
  auto [local, global] = exchange();
  if (global[0].sum().item<int64_t>() == 0) {
    state_.epoch += 1;
    state_.position = 0;
    loader_->start_epoch(state_.epoch, 0);
    fetch();
    std::tie(local, global) = exchange();
    if (global[0].sum().item<int64_t>() == 0)
      fail(join(config_.data_path), "data_path", "an epoch produced no batch (every sample skipped)");
  }
  if (!group_) return out;
  out.resize(static_cast<size_t>(global[0].gt(0).sum().item<int64_t>()));
  for (size_t k = 0; k < out.size(); ++k) {
    const auto mine = local[1][k].item<double>(), all = global[1][k].item<double>();
    out[k].share = all > 0 ? mine * group_->size() / all : 1.0;
  }
  return out;
}

std::pair<torch::Tensor, int64_t> Trainer::forward_loss(const data::TrainBatch& batch,
                                                        const std::vector<torch::Tensor>& pixels) {
  std::vector<torch::Tensor> frames;
  std::vector<int64_t> counts;
  for (const auto& p : pixels) {
    counts.push_back(p.defined() ? p.size(0) : 0);
    if (p.defined()) frames.push_back(p);
  }
  // One vision pass over every picture and frame of the micro-batch, then each sample's tokens.
  const auto tokens = frames.empty() ? torch::Tensor() : model_->model->encode_images(torch::cat(frames));  // [N,Q+1,E]
  std::vector<torch::Tensor> visual;
  int64_t offset = 0;
  for (const int64_t n : counts) {
    visual.push_back(n ? tokens.narrow(0, offset, n).reshape({-1, tokens.size(-1)}) : torch::Tensor());
    offset += n;
  }
  const auto inputs = model_->model->splice(batch.text.input_ids, visual, batch.text.attention_mask, batch.text.labels);
  // The real positions, counted on the host: the text's plus each sample's visual tokens beyond
  // its placeholder.
  int64_t positions = batch.text.attention_mask.sum().item<int64_t>();
  for (const int64_t n : counts)
    if (n) positions += n * model_->config.tokens_per_image() - 1;
  if (config_.answer_format == "regression")
    return {score_head_mse(model_, model_->model(inputs), inputs.host_labels, level_ids_, batch.mos, batch.ids),
            positions};
  if (config_.level_labels != "soft") return {model_->lm_loss(inputs), positions};
  const auto hidden = model_->model(inputs);
  const auto kl = soft_level_kl(model_, hidden, inputs.host_labels, level_ids_, batch.level_probs, batch.ids);
  return {model_->token_loss(hidden, inputs.labels, inputs.supervised_rows) + config_.soft_label_weight * kl,
          positions};
}

Trainer::StepResult Trainer::step() {
  StepResult r;
  const int64_t accumulation = config_.gradient_accumulation_steps;
  auto micro_batches = step_batches();
  // Every micro-batch's pixels start for the device now; the loss sums there, read once a step.
  std::vector<StagedPixels> staged;
  for (const auto& [next, share] : micro_batches)
    staged.push_back(next && share != 0 ? stage_pixels(next->pixels, device_) : StagedPixels{});
  auto loss_acc = torch::zeros({}, torch::TensorOptions(device_).dtype(torch::kFloat64));
  const data::TrainBatch* batch = nullptr;
  for (size_t micro = 0; micro < micro_batches.size(); ++micro) {
    const bool last = micro + 1 == micro_batches.size();
    if (ddp_ && last) ddp_->arm();
    if (zero_) zero_->begin_micro(last);
    if (zero3_) zero3_->begin_micro();
    const auto& [next, share] = micro_batches[micro];
    if (next) {
      batch = &*next;
      state_.position = batch->end_position;
      r.samples += static_cast<int64_t>(batch->ids.size());
      r.ids.insert(r.ids.end(), batch->ids.begin(), batch->ids.end());
    }
    // Share 0: no answer token here while other ranks have some, so nothing to compute.
    if (next && share != 0) {
      auto [loss, tokens] = forward_loss(*batch, take_pixels(staged[micro], device_));
      if (zero3_) zero3_->end_forward();
      auto scaled = loss / static_cast<double>(accumulation);
      if (group_) scaled = scaled * share;
      scaled.backward();
      if (zero3_) zero3_->end_backward();
      if (masters_) masters_->accumulate_grads();
      loss_acc += group_ ? loss.detach().to(torch::kFloat64) * share : loss.detach().to(torch::kFloat64);
      r.tokens += tokens;
    } else if (zero3_) {  // the other ranks' gathers still need this rank
      zero3_->end_forward();
      zero3_->end_backward();
    }
    if (zero_) zero_->end_micro();
  }
  const auto micro = static_cast<int64_t>(micro_batches.size());
  double loss_sum = loss_acc.item<double>();
  if (group_) {
    if (ddp_) ddp_->finish();
    auto totals = torch::tensor({loss_sum / group_->size(), static_cast<double>(r.samples),
                                 static_cast<double>(r.tokens), stop_requested() ? 1.0 : 0.0},
                                torch::kFloat64);
    group_->allreduce_sum(totals);
    loss_sum = totals[0].item<double>();
    r.samples = static_cast<int64_t>(totals[1].item<double>());
    r.tokens = static_cast<int64_t>(totals[2].item<double>());
    r.stop = totals[3].item<double>() > 0;
  } else {
    r.stop = stop_requested();
  }
  r.loss = loss_sum / static_cast<double>(micro);
  const auto norm = zero_ ? zero_->grad_norm() : global_grad_norm(masters_->masters());
  r.grad_norm = norm.item<double>();
  r.lr = config_.learning_rate * state_.schedule.factor(state_.global_step);
  if (!options_.dump_first_step.empty() && state_.global_step == 0 && batch) dump_step(*batch, r.loss);

  if (finite(r.loss) && finite(r.grad_norm)) {
    if (config_.max_grad_norm > 0)
      clip_grads(zero_ ? zero_->slices() : masters_->masters(), config_.max_grad_norm, norm);
    optimizer_->step(state_.schedule.factor(state_.global_step));
    if (zero3_)
      zero3_->take_masters(*zero_);
    else if (zero_)
      zero_->all_gather();
    else
      masters_->copy_to_model();
    r.applied = true;
    applied_steps_ += 1;
    state_.nonfinite_in_row = 0;
    nonfinite_ids_.clear();
  } else {
    state_.nonfinite_in_row += 1;
    state_.nonfinite_total += 1;
    nonfinite_ids_.insert(nonfinite_ids_.end(), r.ids.begin(), r.ids.end());
    log::warn("step ", state_.global_step + 1, ": non-finite ", finite(r.loss) ? "gradient" : "loss", " (loss ", r.loss,
              ", grad norm ", r.grad_norm, "); step skipped; samples: ", join(r.ids));
  }
  if (memory_report_.is_null()) report_memory();
  if (zero_)
    zero_->zero_grad();
  else
    masters_->zero_grad();
  state_.global_step += 1;
  state_.samples_seen += r.samples;
  if (state_.nonfinite_in_row >= config_.max_nonfinite_steps)
    fail("training", "max_nonfinite_steps",
         "stopping after " + std::to_string(state_.nonfinite_in_row) +
             " steps in a row with a non-finite loss or gradient (steps " +
             std::to_string(state_.global_step - state_.nonfinite_in_row + 1) + " to " +
             std::to_string(state_.global_step) + "; samples: " + join(nonfinite_ids_) + ")");
  return r;
}

void Trainer::report_memory() {
  const int64_t parameters = zero3_ ? zero3_->shard_bytes() : bytes_of(model_->parameters());
  int64_t gradients = 0, masters = 0;
  if (zero_) {
    gradients = zero_->peak_gradient_bytes();
    masters = zero_->master_bytes();
  } else {
    std::vector<torch::Tensor> grads;
    for (const auto& m : masters_->masters()) grads.push_back(m.grad());
    gradients = bytes_of(grads) + (ddp_ ? ddp_->buffer_bytes() : 0);
    if (masters_->separate()) masters = bytes_of(masters_->masters());
  }
  const auto peak = device_memory(device_);
  const auto table = every_rank(
      torch::tensor({static_cast<double>(parameters), static_cast<double>(gradients), static_cast<double>(masters),
                     static_cast<double>(optimizer_->state_bytes()), peak.peak_allocated, peak.peak_reserved,
                     static_cast<double>(zero3_ ? zero3_->peak_gathered_in_forward() : 0),
                     static_cast<double>(zero3_ ? zero3_->gathered_bytes_peak() : 0)},
                    torch::kFloat64));
  memory_report_ = nlohmann::json::array();
  for (int r = 0; r < table.size(0); ++r) {
    const auto row = table[r];
    const auto at = [&](int i) { return static_cast<int64_t>(row[i].item<double>()); };
    memory_report_.push_back({{"rank", r},
                              {"parameters", at(0)},
                              {"gradients", at(1)},
                              {"masters", at(2)},
                              {"optimizer", at(3)},
                              {"peak_allocated", at(4)},
                              {"peak_reserved", at(5)}});
    if (config_.offload_optimizer == "cpu" && zero_)
      memory_report_.back()["state_on_host"] = true;  // masters, moments, gradient shard
    if (zero3_)  // ZeRO-3: the most units gathered at once in a forward, and their peak bytes
      memory_report_.back().update({{"gathered_units_peak", at(6)}, {"gathered_bytes_peak", at(7)}});
    if (rank() != 0) continue;
    log::info("memory of rank ", r, " after the first step: parameters ", at(0), " B, gradients ", at(1),
              " B, masters ", at(2), " B, optimizer ", at(3), " B; peak ",
              device_.is_cuda() ? "allocated " : "resident ", at(4), " B");
  }
}

torch::Tensor Trainer::every_rank(const torch::Tensor& mine) const {
  const auto row = mine.reshape({-1}).to(torch::kCPU, torch::kFloat64);
  auto table = torch::zeros({group_ ? group_->size() : 1, row.numel()}, torch::kFloat64);
  table[rank()].copy_(row);
  if (group_) group_->allreduce_sum(table);  // the other rows are zeros: the sum is every rank's row
  return table;
}

nlohmann::json Trainer::rank_memory() const {
  const auto peak = device_memory(device_);
  const auto table = every_rank(torch::tensor({peak.peak_allocated, peak.peak_reserved}, torch::kFloat64));
  auto out = nlohmann::json::array();
  for (int r = 0; r < table.size(0); ++r)
    out.push_back({{"rank", r},
                   {"device", device_.is_cuda() ? "cuda" : "cpu"},
                   {"peak_allocated", static_cast<int64_t>(table[r][0].item<double>())},
                   {"peak_reserved", static_cast<int64_t>(table[r][1].item<double>())}});
  return out;
}

void Trainer::dump_step(const data::TrainBatch& batch, double loss) const {
  io::StateDict out;
  out["input_ids"] = batch.text.input_ids;
  out["labels"] = batch.text.labels;
  out["attention_mask"] = batch.text.attention_mask.to(torch::kUInt8);
  out["loss"] = torch::tensor({static_cast<float>(loss)});
  bool same_shape = !batch.pixels.empty();
  for (const auto& p : batch.pixels)
    same_shape = same_shape && p.defined() && p.sizes() == batch.pixels.front().sizes();
  if (same_shape) out["pixel_values"] = torch::stack(batch.pixels);
  if (masters_)
    for (size_t i = 0; i < masters_->names().size(); ++i) {
      const auto& g = masters_->masters()[i].grad();
      if (g.defined()) out["grad." + masters_->names()[i]] = g.to(torch::kFloat32).contiguous();
    }
  io::save_safetensors(options_.dump_first_step, out);
  log::info("wrote the first step's batch and gradients to ", options_.dump_first_step);
}

void Trainer::write_checkpoint_folder(const std::string& dir) const {
  const CpuPeakScope saving;
  CheckpointContents c;
  c.model_config = model_->config.to_json();
  c.side_files = side_files_;
  c.trainer_state = state_.to_json();
  if (config_.lora_enable && zero3_) {
    c.write_model = [this, tensors = zero3_lora_tensors()](const std::string& d) {
      write_lora_output(d, model_, tensors, trainable_names_, config_);
    };
  } else if (config_.lora_enable) {
    c.write_model = [this](const std::string& d) { write_lora_output(d, model_, trainable_names_, config_); };
  } else if (zero3_) {  // rank 0 writes unit by unit as the others gather with it (below)
    c.write_model = [this](const std::string& d) {
      write_model_folder(
          d, [this](const std::string& weights) { write_zero3_weights(weights); }, model_->config.to_json(),
          side_files_);
    };
  } else {
    c.model = io::state_dict(*model_);
  }
  if (zero_) {  // every rank writes its shard at once, staged next to the folder rank 0 is about to write
    if (rank() == 0) fs::create_directories(dir + ".shards");
    group_->barrier();
    io::save_safetensors(optimizer_file(dir + ".shards", rank()),
                         shard_contents(optimizer_->state_dict(), zero_->ranges(), zero_->slices()));
    group_->barrier();
    for (int r = 0; r < group_->size(); ++r) c.extra_files.push_back(optimizer_file(dir + ".shards", r));
  } else {
    c.optimizer = optimizer_->state_dict();
  }
  c.rng_and_masters["rng.cpu"] = generator_state(torch::kCPU);
  if (device_.is_cuda())  // every rank's, in rank order
    c.rng_and_masters["rng.cuda"] = every_rank(generator_state(device_)).to(torch::kUInt8);
  if (group_)  // each rank's place in its share of the epoch
    c.rng_and_masters["data_position"] = every_rank(torch::tensor({state_.position})).reshape({-1}).to(torch::kInt64);
  if (masters_ && masters_->separate())
    for (size_t i = 0; i < masters_->names().size(); ++i)
      c.rng_and_masters["master." + masters_->names()[i]] = masters_->masters()[i].detach();
  if (rank() == 0) {
    write_checkpoint(dir, c);
    if (zero_) fs::remove_all(dir + ".shards");
    if (fs::path(dir).filename().string().rfind("checkpoint-", 0) == 0) write_latest_pointer(config_.output_dir, dir);
  } else if (zero3_ && !config_.lora_enable) {
    write_zero3_weights("");
  }
  if (group_) group_->barrier();  // the checkpoint is complete before any rank goes on
  report_phase("saving " + dir, saving, rank());
}

void Trainer::write_final_model() const {
  const CpuPeakScope saving;
  const auto& c = config_;
  if (c.lora_enable && zero3_) {
    const auto tensors = zero3_lora_tensors();
    if (rank() == 0) write_lora_output(c.output_dir, model_, tensors, trainable_names_, c);
  } else if (c.lora_enable) {
    if (rank() == 0) write_lora_output(c.output_dir, model_, trainable_names_, c);
  } else if (zero3_ && rank() != 0) {
    write_zero3_weights("");
  } else if (zero3_) {
    write_model_folder(
        c.output_dir, [this](const std::string& d) { write_zero3_weights(d); }, model_->config.to_json(), side_files_);
  } else if (rank() == 0) {
    write_model_folder(c.output_dir, io::state_dict(*model_), model_->config.to_json(), side_files_);
  }
  report_phase("saving " + c.output_dir, saving, rank());
}

void Trainer::write_zero3_weights(const std::string& dir) const {
  const auto tensors = io::state_dict(*model_);
  std::vector<io::TensorSpec> specs;
  for (const auto& [name, t] : tensors) specs.push_back({name, t.sizes().vec(), t.scalar_type()});
  const size_t none = zero3_->unit_count();
  size_t held = none;
  const auto make = [&](const io::TensorSpec& spec) {
    const size_t u = zero3_->unit_of(spec.name);
    if (u != none && u != held) {
      if (held != none) zero3_->drop(held);
      zero3_->gather(u);
      held = u;
    }
    // A buffer is whole on every rank; a parameter holds its unit's gathered values, and the
    // tensor returned keeps them until it is written.
    return tensors.at(spec.name).detach();
  };
  if (!dir.empty())
    io::stream_weights(dir, specs, make);
  else
    for (const size_t i : io::stream_order(specs)) make(specs[i]);
  if (held != none) zero3_->drop(held);
}

io::StateDict Trainer::zero3_lora_tensors() const {
  const std::set<std::string> trainable(trainable_names_.begin(), trainable_names_.end());
  io::StateDict out;
  torch::NoGradGuard no_grad;
  for (size_t u = 0; u < zero3_->unit_count(); ++u) {
    const auto params = zero3_->unit_parameters(u);
    const auto wanted = [&](const std::string& name) {
      return trainable.count(name) || model::is_lora_parameter(name);
    };
    const auto count = [&](const std::vector<std::pair<std::string, torch::Tensor>>& ps) {
      return std::count_if(ps.begin(), ps.end(), [&](const auto& p) { return wanted(p.first); });
    };
    const auto n = count(params);
    if (n == 0) continue;
    // The frozen part (a full-size decoder layer's 0.47 GB) is gathered only if a wanted tensor is in it.
    if (count(zero3_->unit_parameters(u, /*trainable_only=*/true)) == n)
      zero3_->gather_trainable(u);
    else
      zero3_->gather(u);
    if (rank() == 0)  // the one that writes them
      for (const auto& [name, p] : params)
        if (wanted(name)) out[name] = p.detach().clone();
    zero3_->drop(u);
  }
  return out;
}

void Trainer::report_phase(const std::string& phase, const CpuPeakScope& scope, int rank) const {
  if (!counting_cpu_tensor_bytes()) return;
  log::info("rank ", rank, ": ", phase, ": ", scope.peak(), " B of CPU tensors at peak, ", scope.peak() - scope.start(),
            " B above its start", zero3_ ? "; parameter shard " + std::to_string(zero3_->shard_bytes()) + " B" : "");
}

void Trainer::save_checkpoint() const {
  const auto dir = (fs::path(config_.output_dir) / ("checkpoint-" + std::to_string(state_.global_step))).string();
  write_checkpoint_folder(dir);
  if (rank() != 0) return;
  log::info("saved ", dir);
  rotate_checkpoints(config_.output_dir, config_.save_total_limit, config_.model_name_or_path);
}

std::string Trainer::optimizer_file(const std::string& dir, int rank) const {
  const auto name =
      zero_ ? "optimizer.rank" + std::to_string(rank) + "-of-" + std::to_string(group_->size()) + ".safetensors"
            : std::string("optimizer.safetensors");
  return (fs::path(dir) / name).string();
}

void Trainer::evaluate(MetricsLog* metrics) {
  const auto& c = config_;
  // The ranks score their shares of the set and all receive every score, so all agree on the best.
  const CpuPeakScope evaluating;
  const auto results = [&] {
    if (!zero3_) return evaluator_->run(group_.get());
    // ZeRO-3: every rank scores its own share, unit by unit.
    Zero3Params::Evaluating unit_by_unit(*zero3_);
    return evaluator_->run(group_.get(), [&] { unit_by_unit.finish(); });
  }();
  report_phase("evaluation", evaluating, rank());
  const double epoch = static_cast<double>(state_.global_step) / static_cast<double>(steps_per_epoch_);
  if (metrics) metrics->write_eval(state_.global_step, epoch, results);
  double sum = 0;
  for (const auto& [name, a] : results) sum += c.metric_for_best_model == "plcc" ? a.plcc : a.srcc;
  const double mean = sum / static_cast<double>(results.size());
  if (!std::isfinite(mean) || mean <= best_metric_) return;
  best_metric_ = mean;
  const auto dir = (fs::path(c.output_dir) / "best").string();
  write_checkpoint_folder(dir);
  if (rank() != 0) return;
  const nlohmann::json best = {{"step", state_.global_step}, {"metric", c.metric_for_best_model}, {"value", mean}};
  io::write_file_atomic((fs::path(dir) / "best.json").string(), best.dump(2) + "\n");
  log::info("best ", c.metric_for_best_model, " so far (", mean, "): saved ", dir);
}

void Trainer::resume(const std::string& dir) {
  const auto state_path = (fs::path(dir) / "trainer_state.json").string();
  const auto saved = TrainerState::from_json(io::read_json_file(state_path), state_path);
  check_resumed_state(saved, state_path);
  if (saved.schedule.total_steps != state_.schedule.total_steps || saved.schedule.type != state_.schedule.type ||
      saved.schedule.warmup_steps != state_.schedule.warmup_steps)
    log::warn(dir, " was trained with a ", saved.schedule.type, " schedule of ", saved.schedule.total_steps,
              " steps; this config continues with ", state_.schedule.type, " over ", state_.schedule.total_steps);
  const auto schedule = state_.schedule;
  state_ = saved;
  state_.schedule = schedule;
  if (zero3_ && config_.lora_enable) {  // the folder's tensors whole, then this rank's chunks of them
    auto folder = io::read_lora_folder(dir);
    io::load_lora_weights(model_, folder, dir);  // checked only: the parameters hold no storage
    auto tensors = std::move(folder.adapters);
    tensors.insert(folder.non_lora_trainables.begin(), folder.non_lora_trainables.end());
    zero3_->load(Zero3Params::from_tensors(std::move(tensors)));
  } else if (zero3_) {  // this rank's chunks, read from the memory-mapped weights
    const auto reader = std::make_shared<const io::WeightReader>(dir);
    for (const auto& p : model_->named_parameters())
      if (!reader->contains(p.key())) fail(reader->source(), p.key(), "missing from the checkpoint");
    zero3_->load([reader](const std::string& name, int64_t offset, torch::Tensor out) {
      reader->read_into(name, offset, out);
      return true;
    });
  } else if (config_.lora_enable) {
    io::load_lora_weights(model_, io::read_lora_folder(dir), dir);
  } else {
    const auto weights = io::resolve_weights(dir);
    io::load_state_dict(*model_, io::load_weights(weights), weights);
  }
  const auto extra_path = (fs::path(dir) / "rng_state.safetensors").string();
  // The masters in it (a run without ZeRO keeps them there: 4 bytes a trained parameter) are copied
  // from the mapped file where they are used, not loaded beside the optimizer's own.
  const auto extra_file = io::SafetensorsFile::open(extra_path);
  io::StateDict extra;
  for (const auto& t : extra_file->tensors())
    if (t.name.rfind("master.", 0) != 0) extra[t.name] = extra_file->get(t.name).clone();
  // The optimizer's own ranges of the parameters, read from the shards of any world size.
  std::vector<ShardRange> want;
  std::vector<torch::Tensor> like;
  if (zero_) {
    want = zero_->ranges();
    like = zero_->slices();
  } else {
    for (size_t i = 0; i < masters_->names().size(); ++i)
      want.push_back({masters_->names()[i], 0, masters_->masters()[i].numel()});
    like = masters_->masters();
  }
  auto state = read_optimizer_ranges(dir, want, like);
  if (zero_ || masters_->separate()) {
    torch::NoGradGuard no_grad;
    if (zero3_) zero3_->give_masters(*zero_);  // the float32 weights themselves, where no masters are saved
    const auto params = model_->named_parameters();
    for (size_t i = 0; i < want.size(); ++i) {
      const auto key = "master." + want[i].name;
      const auto it = state.find(key);
      if (it != state.end()) {  // the shards' own masters, already cut to this range
        like[i].copy_(it->second);
        state.erase(it);
        continue;
      }
      // Else the whole parameter's masters: from rng_state (a run without ZeRO), or the float32
      // weights themselves.
      const bool in_rng = extra_file->contains(key);
      if (!in_rng && config_.bf16)
        fail(extra_path, want[i].name, "float32 master weights missing (saved without bf16?)");
      if (!in_rng && zero3_) continue;
      const auto whole = in_rng ? extra_file->get(key) : params[want[i].name].detach();
      like[i].copy_(whole.reshape({-1}).narrow(0, want[i].offset, want[i].numel).view(like[i].sizes()));
      if (in_rng) extra_file->release(key, 0, static_cast<uint64_t>(whole.nbytes()));
    }
    if (masters_) masters_->copy_to_model();
  }
  optimizer_->load_state_dict(std::move(state), dir);
  const auto rng = extra.find("rng.cpu");
  if (rng == extra.end()) fail(extra_path, "rng.cpu", "missing");
  const auto cpu_state = generator_state(torch::kCPU);
  if (rng->second.scalar_type() != torch::kUInt8 || rng->second.numel() != cpu_state.numel())
    fail(extra_path, "rng.cpu",
         "holds " + std::to_string(rng->second.numel()) + " values; expected the CPU generator's state of " +
             std::to_string(cpu_state.numel()) + " bytes (the file is damaged or was not written by qalign train)");
  set_generator_state(torch::kCPU, rng->second);
  const int ranks = group_ ? group_->size() : 1;
  const auto cuda_rng = extra.find("rng.cuda");
  if (device_.is_cuda() && cuda_rng != extra.end()) {
    const auto& t = cuda_rng->second;
    if (t.dim() != 2 || t.scalar_type() != torch::kUInt8 || t.size(1) != generator_state(device_).numel())
      fail(extra_path, "rng.cuda", "is not one CUDA generator state per rank (the file is damaged)");
    if (t.size(0) == ranks) set_generator_state(device_, t[rank()].contiguous());
  }
  // Each rank's place in its share of the epoch, from the samples all ranks had taken together.
  const auto positions = extra.find("data_position");
  if (positions != extra.end()) {
    const auto& p = positions->second;
    const int64_t n = p.numel();
    if (n < 1 || p.is_floating_point() || p.min().item<int64_t>() < 0 || p.max().item<int64_t>() > loader_->size())
      fail(extra_path, "data_position",
           "expected each rank's place in an epoch of " + std::to_string(loader_->size()) +
               " samples (0 to that), one per rank (the file is damaged or belongs to another run)");
  }
  const int64_t taken = positions != extra.end() ? positions->second.sum().item<int64_t>() : saved.position;
  state_.position = data::rank_position(taken, config_.per_device_train_batch_size, rank(), ranks);
  const int64_t saved_ranks = positions != extra.end() ? positions->second.numel() : 1;
  if (saved_ranks != ranks) log::info("resharded ", dir, " from ", saved_ranks, " to ", ranks, " processes");
  log::info("resumed from ", dir, " at step ", state_.global_step, " (epoch ", state_.epoch, ", sample ",
            state_.position, ")");
}

void Trainer::check_resumed_state(const TrainerState& saved, const std::string& path) const {
  const auto in_range = [&](const char* field, int64_t v, int64_t hi, const std::string& what) {
    if (v < 0 || v > hi)
      fail(path, field,
           std::to_string(v) + " is outside 0 to " + std::to_string(hi) + " (" + what +
               "): the file is damaged or belongs to another run");
  };
  in_range("global_step", saved.global_step, total_steps(),
           "the steps of this run, from max_steps or num_train_epochs");
  in_range("epoch", saved.epoch, saved.global_step, "at most one epoch begins per step");
  in_range("position", saved.position, loader_->size(), "the samples of an epoch");
  in_range("samples_seen", saved.samples_seen, std::numeric_limits<int64_t>::max(), "a count");
  in_range("nonfinite_in_row", saved.nonfinite_in_row, saved.global_step, "steps taken");
  in_range("nonfinite_total", saved.nonfinite_total, saved.global_step, "steps taken");
}

void Trainer::train() {
  const auto& c = config_;
  fs::create_directories(c.output_dir);
  int64_t resumed_at = -1;
  if (!c.resume_from_checkpoint.empty()) {
    resume(resolve_resume_dir(c.resume_from_checkpoint, c.output_dir));
    resumed_at = state_.global_step;
    const auto best = fs::path(c.output_dir) / "best" / "best.json";
    if (fs::exists(best)) {
      const auto j = io::read_json_file(best.string());
      const auto value = j.is_object() ? j.find("value") : j.end();
      if (value == j.end() || !value->is_number()) fail(best.string(), "value", "expected the best metric, a number");
      best_metric_ = value->get<double>();
    }
  }
  // A model started from a checkpoint of this output_dir is never written over (save_total_limit
  // never counts or removes it either).
  check_model_survives(c.output_dir, c.model_name_or_path, state_.global_step, total_steps(), evaluator_ != nullptr);
  install_stop_handler();
  std::optional<MetricsLog> metrics;  // rank 0 reports for all
  if (rank() == 0) metrics.emplace(c.output_dir, resumed_at);
  loader_->start_epoch(state_.epoch, state_.position);

  using clock = std::chrono::steady_clock;
  StepMetrics window;
  int64_t window_steps = 0, window_finite = 0, window_samples = 0, window_tokens = 0;
  double window_loss = 0;
  auto window_start = clock::now();
  double window_wait_start = input_wait_s_;
  reset_peak_memory(device_);  // the peaks reported are the training's, loading and setup aside
  while (state_.global_step < total_steps()) {
    const auto r = step();
    window_steps += 1;
    window_samples += r.samples;
    window_tokens += r.tokens;
    if (finite(r.loss)) {
      window_loss += r.loss;
      window_finite += 1;
    }
    if (state_.global_step % c.logging_steps == 0 || state_.global_step == total_steps()) {
      const double seconds = std::chrono::duration<double>(clock::now() - window_start).count();
      window.step = state_.global_step;
      window.epoch = static_cast<double>(state_.global_step) / static_cast<double>(steps_per_epoch_);
      window.loss = window_finite ? window_loss / static_cast<double>(window_finite) : std::nan("");
      window.grad_norm = r.grad_norm;
      window.lr = r.lr;
      window.samples_per_s = static_cast<double>(window_samples) / seconds;
      window.tokens_per_s = static_cast<double>(window_tokens) / seconds;
      window.ms_per_step = 1000.0 * seconds / static_cast<double>(window_steps);
      window.input_wait_ms_per_step = 1000.0 * (input_wait_s_ - window_wait_start) / static_cast<double>(window_steps);
      window_wait_start = input_wait_s_;
      window.peak_memory_mib = peak_memory_mib(device_);
      window.nonfinite_steps = state_.nonfinite_total;
      window.skipped_samples = loader_->skipped_total();
      window.memory = rank_memory();
      window.memory_report = std::exchange(memory_report_, nlohmann::json::array());
      if (metrics) metrics->write(window, total_steps());
      window_steps = window_finite = window_samples = window_tokens = 0;
      window_loss = 0;
      window_start = clock::now();
    }
    if (evaluator_ && (state_.global_step % c.eval_steps == 0 || state_.global_step == total_steps()))
      evaluate(metrics ? &*metrics : nullptr);
    if (state_.global_step % c.save_steps == 0 || r.stop) save_checkpoint();
    if (r.stop) {  // this rank's signal, or a peer's (passed on as SIGTERM by the launcher)
      stopped_by_ = stop_signal() ? stop_signal() : SIGTERM;
      log::warn("stopped by ", stopped_by_ == SIGINT ? "SIGINT" : "SIGTERM", " after step ", state_.global_step,
                " (checkpoint saved); continue with resume_from_checkpoint=latest");
      return;
    }
  }
  const int64_t ran = state_.global_step - std::max<int64_t>(resumed_at, 0);
  if (ran > 0 && applied_steps_ == 0)
    fail(c.output_dir, "",
         "trained nothing: every one of the run's " + std::to_string(ran) +
             " steps had a non-finite loss or gradient and was skipped (the warnings above name the samples); "
             "no model written");
  if (options_.write_final_model) {
    write_final_model();
    if (rank() == 0 && ran > 0)
      log::info("training done: ", state_.global_step, " steps; model written to ", c.output_dir);
    else if (rank() == 0)
      log::info("nothing left to train: resumed at step ", state_.global_step,
                ", the end of this run; model written to ", c.output_dir);
  }
  if (group_) log::info("rank ", rank(), ": peak memory ", peak_memory_mib(device_), " MiB");
  if (group_) group_->barrier();
}

}  // namespace qalign::train
