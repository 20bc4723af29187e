#pragma once
// The memory a training recipe needs per rank, before any run: the state the trainer allocates
// (parameters, gradients, float32 masters, AdamW's moments), counted the way train/master_weights,
// qalign/distributed/ddp and train/zero lay it out, for the parameters the recipe trains (freezing, LoRA),
// plus an activation estimate from the model's sizes. `qalign plan` prints it; the trainer logs it.
//
// The plan assumes a process group of `world_size` ranks (`qalign launch`, torchrun), as a
// multi-process run has; a one-process `qalign train` without a launcher holds no bucket buffers
// and ignores zero_stage.
#include <cstdint>
#include <string>

#include "qalign/config/train_config.h"
#include "qalign/label_files.h"
#include "qalign/model/config.h"

namespace qalign::train {

// Bytes of one rank, on the device or on the host.
struct MemoryTerms {
  int64_t parameters = 0;   // the model's weights in the compute dtype (ZeRO-3: this rank's shard)
  int64_t gradients = 0;    // the most gradient storage alive at once: owned shards and buckets
  int64_t masters = 0;      // float32 masters (none when the model itself is float32, stage 0)
  int64_t optimizer = 0;    // AdamW's two float32 moments
  int64_t activations = 0;  // what forward keeps for backward, at the peak of backward
  int64_t buffers = 0;      // ZeRO-3's gathered units
  int64_t total = 0;
};

struct Plan {
  int world_size = 1;
  int64_t zero_stage = 0;
  std::string offload_optimizer = "none";
  int64_t micro_batch = 1;
  int64_t sequence_tokens = 0;  // per sample: text plus visual tokens
  int64_t visual_blocks = 1;    // per sample: pictures, or a video's frames
  int64_t trainable_parameters = 0, all_parameters = 0;
  int64_t device_memory = 0;  // what `fits` was judged against
  MemoryTerms device_per_rank, host_per_rank;
  // Beside the training state, on a GPU: what the CUDA context, cuBLAS workspaces, NCCL's
  // buffers and fragmentation take (device_memory_headroom_mb, else the estimate: 512 MiB of
  // context, 64 MiB of workspaces, 256 MiB per NCCL communicator, 5 % of the device). At stage 3
  // no rank ever holds the whole model (it loads its own chunks, saves and evaluates unit by
  // unit: train/zero3.h), so no moment needs more than the training state's total.
  // `fits` holds total + headroom against device_memory.
  int64_t device_headroom = 0;
  bool fits = false;
  int64_t max_micro_batch = 0;  // the largest per-device micro-batch that fits; 0 if none
  // "fits as configured", else the first of: a higher zero_stage, offload_optimizer: cpu, a smaller
  // micro-batch with more accumulation steps; or why nothing fits.
  std::string advice;
  bool nothing_fits = false;  // not even ZeRO-3 with offload at micro-batch 1
};

// The largest training sample: its tokens tokenized as the trainer does (text, plus each visual
// block's tokens less the placeholder) and its visual blocks (pictures, or a video's sampled
// frames, read from the headers of the first 64 videos: decoding them all would take long).
struct SampleSize {
  int64_t tokens = 0;
  int64_t visual_blocks = 1;
};
// Over data_path's records, or model_max_length plus one image when the data or the tokenizer
// cannot be read.
SampleSize sample_size(const config::TrainConfig& c, const model::ModelConfig& m);
// Over records already read (the 64 longest, in words and visual blocks, are tokenized).
SampleSize sample_size(const config::TrainConfig& c, const model::ModelConfig& m,
                       const std::vector<TrainingRecord>& records);
inline int64_t sequence_tokens(const config::TrainConfig& c, const model::ModelConfig& m) {
  return sample_size(c, m).tokens;
}
inline int64_t sequence_tokens(const config::TrainConfig& c, const model::ModelConfig& m,
                               const std::vector<TrainingRecord>& records) {
  return sample_size(c, m, records).tokens;
}

// The plan of `c` on `world_size` ranks with `device_memory` bytes each; `tokens` and
// `visual_blocks` per sample (sample_size's when < 1; one block with given tokens).
// `process_group`: whether the ranks join one (a single process started without a launcher does
// not, so it holds no gradient buckets; give it stage 0).
Plan plan_training(const config::TrainConfig& c, const model::ModelConfig& m, int world_size, int64_t device_memory,
                   int64_t tokens = 0, bool process_group = true, int64_t visual_blocks = 0);

// The plan as a few lines for a log or a terminal: the terms per rank, and with a device memory
// (device_memory > 0) the verdict and the advice.
std::string describe(const Plan& p);

}  // namespace qalign::train
