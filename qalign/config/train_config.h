#pragma once
// A training recipe, read from YAML (configs/*.yaml) plus command-line overrides. The options are
// the authors' (SPEC.md §7, names as train_mem.py / HF TrainingArguments spell them). Defaults
// are what every one of the authors' full fine-tuning scripts passes; options a script sets per
// dataset (epochs, batch size, save_steps) default to HF TrainingArguments' value.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "qalign/media_budget.h"

namespace qalign::config {

// The longest ddp_timeout or rendezvous_timeout: a week, far inside what a millisecond count and
// NCCL's watchdog hold (a larger count wrapped to "timed out after -1000ms").
inline constexpr int64_t kMaxTimeoutSeconds = 7 * 24 * 3600;

struct TrainConfig {
  // Model and data.
  std::string model_name_or_path;          // required: folder with config.json + weights
  std::vector<std::string> data_path;      // required: training JSONs (SPEC.md §11.1)
  std::string image_folder;                // prefix of the JSONs' relative image paths
  std::string output_dir;                  // required
  std::string version = "v1";              // conversation template; only v1 exists
  std::string image_aspect_ratio = "pad";  // pad to square with the CLIP mean colour
  int64_t model_max_length = 2048;

  // Schedule.
  double num_train_epochs = 3.0;
  int64_t max_steps = -1;  // > 0 overrides num_train_epochs
  int64_t per_device_train_batch_size = 8;
  int64_t per_device_eval_batch_size = 8;
  int64_t gradient_accumulation_steps = 1;
  int64_t seed = 42;

  // Optimiser: AdamW with linear warm-up then the scheduler.
  double learning_rate = 2e-5;
  double weight_decay = 0.0;
  double warmup_ratio = 0.03;
  std::string lr_scheduler_type = "cosine";  // cosine | linear | constant
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  double adam_epsilon = 1e-8;
  double max_grad_norm = 0.0;  // 0 = no clipping (the authors' ZeRO setup clips nothing)
  // Abstractor learning rate; unset = learning_rate. The authors' flag is a no-op (SPEC.md §7).
  std::optional<double> visual_abstractor_lr;

  // What is trained.
  bool tune_visual_abstractor = true;
  bool freeze_vision_model = false;
  bool tune_language_model = true;  // false freezes embed_tokens, the decoder layers, norm, lm_head
  bool lora_enable = false;
  int64_t lora_r = 128;
  int64_t lora_alpha = 256;
  double lora_dropout = 0.05;
  // Adapted projections: q, k, v, o, gate, up, down or module-name suffixes (model/lora.h);
  // empty = the authors' q_proj + v_proj.multiway.1.
  std::vector<std::string> lora_target_modules;
  // A LoRA folder (ours or the authors') whose adapters and abstractor weights the run starts
  // from instead of fresh adapters; its r, alpha and targets replace lora_r, lora_alpha and
  // lora_target_modules.
  std::string lora_weights;

  // Labels: the level word as one token (Q-Align) or soft level probabilities (DeQA-Score).
  std::string level_labels = "one_hot";  // one_hot | soft
  double soft_label_weight = 1.0;        // weight of the soft-label loss term
  // What the model is taught to answer, for the levels-versus-scores ablation: "levels" (the
  // authors' level words), "number" (the data's answers write the MOS as a number; scored by
  // greedy decoding) or "regression" (a linear head on the hidden state that predicts the level
  // word, trained by squared error on the record's MOS; no token loss).
  std::string answer_format = "levels";
  // HF's optim flag: "adamw_torch" (the authors', torch.optim.AdamW step for step) or
  // "adamw_torch_fused" (the fused kernel: faster, equal up to rounding).
  std::string optim = "adamw_torch";

  // Precision, memory, parallelism.
  bool bf16 = true;
  bool tf32 = true;
  bool gradient_checkpointing = true;
  // Sharding of optimizer state (1), gradients (2) and parameters (3, train/zero3.h).
  int64_t zero_stage = 2;
  // Where ZeRO keeps the float32 masters, AdamW's moments and the owned gradient shard: "none"
  // (the device) or "cpu" (host memory; needs zero_stage >= 1), as DeepSpeed's offload_optimizer.
  std::string offload_optimizer = "none";
  // Threads of the host AdamW when the optimizer is offloaded from a GPU; 0: the machine's cores
  // shared by the node's ranks (qalign launch runs several ranks with OMP_NUM_THREADS=1).
  int64_t offload_optimizer_threads = 0;
  // ZeRO-3: units (one encoder or decoder layer, ...) gathered ahead of the one computing.
  int64_t zero3_prefetch_blocks = 1;
  // Refuse, on a GPU, a run whose memory plan (qalign plan) exceeds the device's memory.
  bool memory_plan_check = true;
  // MiB of each GPU the plan leaves to the CUDA context, cuBLAS workspaces, NCCL's buffers and the
  // caching allocator's fragmentation; -1: train/plan.h's estimate.
  double device_memory_headroom_mb = -1;
  // c10d backend of a multi-process run: auto = nccl on CUDA, gloo on CPU (HF's ddp_backend).
  std::string ddp_backend = "auto";
  // Seconds a collective may wait for the other ranks before the run stops (HF's ddp_timeout);
  // at most kMaxTimeoutSeconds.
  int64_t ddp_timeout = 1800;
  // Seconds the ranks may take to find each other at the start (rank 0's store at MASTER_ADDR:
  // MASTER_PORT answering, every rank joined): torchrun's join timeout, never more than
  // ddp_timeout; at most kMaxTimeoutSeconds.
  int64_t rendezvous_timeout = 600;
  // Gradient buckets of about this many MB of float32 (HF's ddp_bucket_cap_mb; DDP's 25).
  double ddp_bucket_cap_mb = 25;
  // Dtype ZeRO reduces gradients in (always summed into float32 shards): float32 keeps N ranks
  // equal to one within rounding; bfloat16 halves the traffic, as DeepSpeed's default does.
  std::string zero_communication_dtype = "float32";
  // Where the model, the batches and the optimizer live: auto = cuda:LOCAL_RANK when CUDA is
  // present, else the CPU.
  std::string device = "auto";

  // Data loading.
  int64_t dataloader_num_workers = 4;
  bool group_by_modality_length = true;
  bool dataloader_shuffle = true;  // false: samples in file order (parity tests)
  // Share of an epoch's samples that may be missing or corrupt (each skipped and logged) before
  // the run stops.
  double max_skipped_sample_fraction = 0.01;
  // What one picture may cost, in MB of 2^20 bytes: its file (checked before it is read) and the
  // decoder's allocation (estimated from its header, checked before decoding).
  int64_t max_image_file_mb = kDefaultMaxImageFileMb;
  int64_t max_image_decoded_mb = kDefaultMaxImageDecodedMb;

  // Logging, checkpoints, evaluation.
  int64_t logging_steps = 1;
  int64_t save_steps = 500;
  int64_t save_total_limit = 0;  // 0 = keep every checkpoint
  // A checkpoint-<step> folder, or "latest" for the newest one in output_dir; "" starts afresh.
  std::string resume_from_checkpoint;
  // Train into an output_dir that already holds files, starting afresh (as Hugging Face's flag).
  bool overwrite_output_dir = false;
  // Optimizer steps in a row with a non-finite loss or gradient (each skipped) that stop the run.
  int64_t max_nonfinite_steps = 5;
  std::vector<std::string> eval_data_paths;    // test JSONs (SPEC.md §11.2)
  int64_t eval_steps = 0;                      // 0 = no evaluation during training
  std::string metric_for_best_model = "srcc";  // srcc | plcc
};

// Reads `path`, applies `overrides` ("key=value", later ones win) and validates. Errors name the
// file, the line and the key, or "command line" and the key for an override.
TrainConfig load_train_config(const std::string& path, const std::vector<std::string>& overrides = {});

// Sets one option from "key=value", typed by the option: numbers, true/false, null for an unset
// optional, and for lists "a,b" or "[a, b]".
void apply_override(TrainConfig& config, const std::string& key_value);

// Checks that depend on several options or on required ones; `source` names the config in errors.
void validate(const TrainConfig& config, const std::string& source);

// Every option as YAML that load_train_config reads back to the same config.
std::string to_yaml(const TrainConfig& config);

}  // namespace qalign::config
