#pragma once
// The single-process trainer: the authors' SFT step (SPEC.md §3.5, §7) on their data format.
// Each optimizer step runs gradient_accumulation_steps micro-batches (next-token cross-entropy
// on the answer tokens, divided by the accumulation count, as HF does), measures the global
// gradient norm, clips it when max_grad_norm > 0, and applies AdamW at the schedule's learning
// rate. A step whose loss or gradient is not finite is skipped (weights and moments untouched);
// max_nonfinite_steps of them in a row stop the run.
//
// An epoch has ceil(batches / accumulation) steps; its last step may accumulate fewer
// micro-batches (each still divided by the full count).
//
// Started by a launcher (qalign/distributed/process_group.h: torchrun, qalign launch, or SLURM and Open MPI
// with a world size above 1), it trains data
// parallel: rank 0's weights are broadcast, each rank takes its share of the epoch's order
// (data::rank_share), and the last micro-step's backward averages the gradients
// (qalign/distributed/ddp.h). Each rank's loss is weighted by its share of the micro-step's answer
// tokens, exchanged once at the start of the step, so N ranks with batch B compute what one
// process computes with batch N·B, epoch tails included.
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/loader.h"
#include "qalign/config/train_config.h"
#include "qalign/distributed/ddp.h"
#include "qalign/distributed/process_group.h"
#include "qalign/model/owl2.h"
#include "qalign/tokenizer.h"
#include "train/adamw.h"
#include "train/checkpointing.h"
#include "train/cpu_memory.h"
#include "train/evaluation.h"
#include "train/master_weights.h"
#include "train/metrics_log.h"
#include "train/run_lock.h"
#include "train/trainer_state.h"
#include "train/zero.h"
#include "train/zero3.h"

namespace qalign::train {

struct TrainerOptions {
  // When set, the first optimizer step writes this safetensors file before updating: its last
  // micro-batch (input_ids, labels, attention_mask as uint8, pixel_values [B,F,3,S,S] when all
  // samples have the same frame count), the step's mean loss [1] and grad.<name> for every
  // trainable parameter (float32, accumulated, before clipping). For parity checks.
  std::string dump_first_step;
  // For the training benchmark: the model built by this (in the run's dtype, on its device)
  // instead of loaded from model_name_or_path (which still gives the tokenizer), batches from
  // this source instead of data_path, and no final model written.
  std::function<model::Owl2ForCausalLM(torch::Dtype, torch::Device)> build_model;
  std::shared_ptr<data::BatchSource> batches;
  bool write_final_model = true;
};

class Trainer {
 public:
  explicit Trainer(config::TrainConfig config, TrainerOptions options = {});
  ~Trainer();

  // Trains to the end (max_steps, else num_train_epochs), resuming first when the config says
  // so; writes checkpoints, metrics.jsonl and the final model into output_dir. SIGTERM to any
  // rank makes every rank save a checkpoint after the current step and return.
  void train();
  // The signal (SIGTERM or SIGINT, this rank's or a peer's) that ended train() early after a
  // checkpoint, or 0.
  int stopped_by() const { return stopped_by_; }

  const TrainerState& state() const { return state_; }
  int64_t total_steps() const { return state_.schedule.total_steps; }
  model::Owl2ForCausalLM& model() { return model_; }

 private:
  struct StepResult {
    double loss = 0;
    double grad_norm = 0;
    double lr = 0;
    bool applied = false;
    bool stop = false;  // SIGTERM reached this or another rank: checkpoint and stop
    int64_t samples = 0, tokens = 0;
    std::vector<std::string> ids;
  };
  // One micro-batch of this rank, or none in an epoch's last round; `share` scales its loss.
  struct MicroBatch {
    std::optional<data::TrainBatch> batch;
    double share = 1;
  };
  StepResult step();
  // Logs the recipe's memory plan (train/plan.h); on a GPU, refuses one planned above its memory.
  void check_memory_plan(const std::vector<TrainingRecord>& records, const distributed::LaunchEnv& env) const;
  // The micro-batches of the next optimizer step, starting an epoch when every rank's is done.
  std::vector<MicroBatch> step_batches();
  int rank() const { return group_ ? group_->rank() : 0; }
  // Forward of one micro-batch (its pixels already on the device): the mean token loss and the
  // number of real positions.
  std::pair<torch::Tensor, int64_t> forward_loss(const data::TrainBatch& batch,
                                                 const std::vector<torch::Tensor>& pixels);
  void dump_step(const data::TrainBatch& batch, double loss) const;
  // Writes checkpoint folder `dir` (rank 0 writes; with ZeRO every rank adds its shard).
  void write_checkpoint_folder(const std::string& dir) const;
  // The run's final model (or LoRA folder) in output_dir: rank 0 writes, at ZeRO-3 every rank
  // gathers with it.
  void write_final_model() const;
  // ZeRO-3: the weights unit by unit, every rank gathering the units in the order rank 0 writes
  // their tensors (io::stream_order) into `dir`; the other ranks (`dir` empty) only gather.
  void write_zero3_weights(const std::string& dir) const;
  // ZeRO-3: the adapters and other trainable tensors whole, gathered unit by unit on every rank
  // (the frozen part of a unit left out); rank 0 keeps them, the others return nothing.
  io::StateDict zero3_lora_tensors() const;
  // Logs this rank's peak of CPU tensor bytes in a phase (loading, saving, evaluation).
  void report_phase(const std::string& phase, const CpuPeakScope& scope, int rank) const;
  void save_checkpoint() const;
  // Scores eval_data_paths with the model as it is, logs the agreement, and keeps the model in
  // output_dir/best when the mean of metric_for_best_model over the datasets improves.
  void evaluate(MetricsLog* metrics);  // metrics: rank 0's log, null elsewhere
  // optimizer.safetensors, or `rank`'s shard file with ZeRO, in checkpoint folder `dir`.
  std::string optimizer_file(const std::string& dir, int rank) const;
  void resume(const std::string& dir);

  // Step 1's per-rank bytes of parameters, gradients, masters and optimizer state, counted from
  // the tensors, with the peak device memory; goes out with the next metrics line.
  void report_memory();
  // Every rank's peak device memory (a collective), for each metrics line.
  nlohmann::json rank_memory() const;
  // Row r: rank r's `mine`, flattened, as float64 (a collective; [1, n] without a process group).
  torch::Tensor every_rank(const torch::Tensor& mine) const;

  // Refuses a resumed state that does not fit this run (step past its end, a data position past
  // its samples), naming the file and field, before any of it is used.
  void check_resumed_state(const TrainerState& saved, const std::string& path) const;

  config::TrainConfig config_;
  TrainerOptions options_;
  std::optional<RunLock> lock_;  // output_dir's, held by rank 0 for the run: one job writes it
  ModelSideFiles side_files_;    // the model's tokenizer and preprocessor files, for every checkpoint
  torch::Device device_{torch::kCPU};
  std::vector<std::string> trainable_names_;
  std::unique_ptr<distributed::ProcessGroup> group_;  // set when launched with a world size above 1
  std::shared_ptr<const Tokenizer> tokenizer_;
  model::Owl2ForCausalLM model_{nullptr};
  std::unique_ptr<MasterWeights> masters_;  // without ZeRO
  std::unique_ptr<AdamW> optimizer_;
  std::unique_ptr<distributed::DataParallel> ddp_;  // zero_stage 0 with several processes
  std::unique_ptr<ZeroShards> zero_;                // zero_stage 1, 2 or 3 with several processes
  std::unique_ptr<Zero3Params> zero3_;              // zero_stage 3: the parameters' shards
  double input_wait_s_ = 0;
  int stopped_by_ = 0;            // the training thread's time waiting for the loader, summed
  nlohmann::json memory_report_;  // null until the first step; then written once with the next metrics line
  std::shared_ptr<data::BatchSource> loader_;
  int64_t steps_per_epoch_ = 1;
  TrainerState state_;
  std::vector<int64_t> level_ids_;  // the five level words' ids, for soft targets
  std::unique_ptr<Evaluator> evaluator_;
  double best_metric_ = -1e300;             // the best mean eval metric so far (output_dir/best/best.json)
  std::vector<std::string> nonfinite_ids_;  // sample ids of the current run of skipped steps
  int64_t applied_steps_ = 0;               // steps of this process's run whose update was applied
};

}  // namespace qalign::train
