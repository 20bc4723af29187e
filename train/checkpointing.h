#pragma once
// Training checkpoints on disk: output_dir/checkpoint-<step>/ holds a Hugging Face model folder
// (model.safetensors, config.json, tokenizer and preprocessor files), loadable by the authors'
// code and by `qalign score`, plus the trainer's state:
//   trainer_state.json         step, epoch, data position, schedule, counters
//   optimizer.safetensors      AdamW moments and step counts by parameter name
//   optimizer.rank<r>-of-<W>.safetensors   instead, with ZeRO: each rank's shard of them
//   rng_state.safetensors      the CPU generator; float32 masters when the model is not float32
// A checkpoint is written into a temporary folder that is renamed into place when complete, so
// an interrupted save never leaves a checkpoint-<step> that looks whole; output_dir/latest, a
// one-line file naming the newest complete checkpoint, is replaced (atomically) last.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "qalign/io/state_dict.h"

namespace qalign::train {

// A model folder's files besides weights and config.json (tokenizer.model, tokenizer_config.json,
// preprocessor_config.json, ...): name -> bytes. A run reads them once, at its start, so every
// checkpoint holds them even when the folder they came from changes or goes during the run.
using ModelSideFiles = std::map<std::string, std::string>;
ModelSideFiles read_model_side_files(const std::string& model_dir);

struct CheckpointContents {
  io::StateDict model;                     // the weights, in the model's dtype
  nlohmann::json model_config;             // ModelConfig::to_json
  ModelSideFiles side_files;               // the tokenizer and preprocessor files of the run's model
  nlohmann::json trainer_state;            // TrainerState::to_json
  std::optional<io::StateDict> optimizer;  // AdamW::state_dict; unset with ZeRO (shards in extra_files)
  io::StateDict rng_and_masters;           // "rng.cpu" and "master.<name>"
  // When set, writes the model part into the folder instead of the full model (LoRA runs write
  // their adapter folder, lora_training.h).
  std::function<void(const std::string& dir)> write_model;
  std::vector<std::string> extra_files;  // moved in before the folder is renamed into place
};

// The HF model folder part alone (the final model of a run): weights, config.json and the
// tokenizer/preprocessor files (`side_files`, read_model_side_files of the source model).
// Weights go in shards of at most max_shard_bytes (with an index) when they do not fit in one file.
void write_model_folder(const std::string& dir, const io::StateDict& weights, const nlohmann::json& model_config,
                        const ModelSideFiles& side_files, uint64_t max_shard_bytes = 5ull << 30);
// The same with the weights written by write_weights(dir) (init's and export's shard-at-a-time writer).
void write_model_folder(const std::string& dir, const std::function<void(const std::string&)>& write_weights,
                        const nlohmann::json& model_config, const ModelSideFiles& side_files);

// Writes `dir` (…/checkpoint-<step>) whole, replacing an older folder of that name.
void write_checkpoint(const std::string& dir, const CheckpointContents& c);

// (step, path) of every checkpoint-<step> folder in output_dir, oldest first.
std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& output_dir);

// Deletes the oldest checkpoints until at most `limit` remain (limit 0 keeps them all); never
// `keep` (the run's own model_name_or_path, when it is one of them), which is not counted.
void rotate_checkpoints(const std::string& output_dir, int64_t limit, const std::string& keep = "");

// Points output_dir/latest at `checkpoint_dir` (a folder inside output_dir).
void write_latest_pointer(const std::string& output_dir, const std::string& checkpoint_dir);

// The lock file in output_dir that one `qalign train` holds while it writes there (RunLock);
// never counted as a file of an earlier run.
std::string run_lock_file(const std::string& output_dir);

// Checks a run may write output_dir, before anything is written there: never the model folder
// it starts from, and no overwrite_output_dir that would remove that model (a checkpoint of an
// earlier run in output_dir).
void check_output_dir(const std::string& output_dir, const std::string& model_dir, bool resuming, bool overwrite);

// Checks a run may write output_dir: a folder that holds files only when resuming, or with
// overwrite_output_dir, which first removes an earlier run's checkpoints, `latest`, `best` and
// metrics (when `remove_old`: one process of a job does it).
void prepare_output_dir(const std::string& output_dir, bool resuming, bool overwrite, bool remove_old);

// Fails when model_dir is a folder this run writes over: a checkpoint-<step> of output_dir for a
// step in (from_step, to_step], or output_dir/best when the run evaluates (`writes_best`).
void check_model_survives(const std::string& output_dir, const std::string& model_dir, int64_t from_step,
                          int64_t to_step, bool writes_best);

// Whether `path` is `dir` or lies inside it (after resolving links and "..").
bool is_inside(const std::string& path, const std::string& dir);

// Why `dir` cannot be resumed from (a missing or unreadable trainer_state.json, weights, optimizer
// or RNG file, a safetensors header that does not match its file), or nullopt when it is intact.
std::optional<std::string> checkpoint_problem(const std::string& dir);

// resume_from_checkpoint's value as a folder. "latest" (or "true", HF's spelling): the checkpoint
// output_dir/latest names (a checkpoint-<step> folder of output_dir, nothing else), else the
// newest; one that fails checkpoint_problem is reported and the next older one tried. Anything
// else must be an intact checkpoint folder.
std::string resolve_resume_dir(const std::string& spec, const std::string& output_dir);

}  // namespace qalign::train
