#include "train/checkpointing.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "qalign/base/atomic_file.h"
#include "qalign/base/error.h"
#include "qalign/base/json_file.h"
#include "qalign/base/log.h"
#include "qalign/io/checkpoint.h"
#include "qalign/io/safetensors.h"
#include "qalign/preprocessor_config.h"
#include "train/optimizer_shards.h"

namespace qalign::train {

namespace fs = std::filesystem;

namespace {

// Files of a model folder that are not weights, copied so a checkpoint is a usable model.
const char* const kModelSideFiles[] = {"tokenizer.model",   "tokenizer_config.json",    "special_tokens_map.json",
                                       "added_tokens.json", "preprocessor_config.json", "generation_config.json"};

void sync_folder(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

// "checkpoint-<digits>" -> step, else -1.
int64_t checkpoint_step(const std::string& name) {
  const std::string prefix = "checkpoint-";
  if (name.compare(0, prefix.size(), prefix) != 0 || name.size() == prefix.size()) return -1;
  const std::string digits = name.substr(prefix.size());
  if (!std::all_of(digits.begin(), digits.end(), [](unsigned char c) { return std::isdigit(c); })) return -1;
  return std::stoll(digits);
}

}  // namespace

void write_model_folder(const std::string& dir, const io::StateDict& weights, const nlohmann::json& model_config,
                        const std::string& source_model_dir, uint64_t max_shard_bytes) {
  write_model_folder(
      dir, [&](const std::string& d) { io::save_weights(d, weights, io::WeightFormat::Safetensors, max_shard_bytes); },
      model_config, source_model_dir);
}

void write_model_folder(const std::string& dir, const std::function<void(const std::string&)>& write_weights,
                        const nlohmann::json& model_config, const std::string& source_model_dir) {
  fs::create_directories(dir);
  write_weights(dir);
  io::write_file_atomic((fs::path(dir) / "config.json").string(), model_config.dump(2) + "\n");
  for (const char* name : kModelSideFiles) {
    const fs::path from = fs::path(source_model_dir) / name;
    if (fs::exists(from)) io::write_file_atomic((fs::path(dir) / name).string(), io::read_file(from.string()));
  }
  // The processor must crop to this model's image size; a tokenizer's folder borrowed from a model
  // of another size (qalign init) brings another, and a folder without one gets CLIP's.
  const int64_t size = model_config.at("visual_config").at("visual_model").at("image_size").get<int64_t>();
  const auto processor = fs::path(dir) / "preprocessor_config.json";
  bool consistent = fs::exists(processor);
  try {
    if (consistent) check_preprocessor_config(dir, size);
  } catch (const Error&) {
    consistent = false;
  }
  if (!consistent) io::write_file_atomic(processor.string(), clip_preprocessor_config(size).dump(2) + "\n");
}

void write_checkpoint(const std::string& dir, const CheckpointContents& c) {
  const fs::path final_dir(dir);
  const fs::path parent = final_dir.parent_path();
  const fs::path tmp = parent / ("." + final_dir.filename().string() + ".tmp");
  fs::remove_all(tmp);
  if (c.write_model)
    c.write_model(tmp.string());
  else
    write_model_folder(tmp.string(), c.model, c.model_config, c.source_model_dir);
  if (c.optimizer) io::save_safetensors((tmp / "optimizer.safetensors").string(), *c.optimizer);
  for (const auto& f : c.extra_files) fs::rename(f, tmp / fs::path(f).filename());
  io::save_safetensors((tmp / "rng_state.safetensors").string(), c.rng_and_masters);
  io::write_file_atomic((tmp / "trainer_state.json").string(), c.trainer_state.dump(2) + "\n");
  sync_folder(tmp);
  if (fs::exists(final_dir)) {  // a rerun over the same output_dir: replace, never merge
    const fs::path old = parent / ("." + final_dir.filename().string() + ".old");
    fs::remove_all(old);
    fs::rename(final_dir, old);
    fs::rename(tmp, final_dir);
    fs::remove_all(old);
  } else {
    fs::rename(tmp, final_dir);
  }
  sync_folder(parent);
}

std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& output_dir) {
  std::vector<std::pair<int64_t, std::string>> out;
  if (!fs::is_directory(output_dir)) return out;
  for (const auto& e : fs::directory_iterator(output_dir)) {
    const int64_t step = checkpoint_step(e.path().filename().string());
    if (step >= 0 && e.is_directory()) out.emplace_back(step, e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

void prepare_output_dir(const std::string& output_dir, const std::string& model_dir, bool resuming, bool overwrite,
                        bool remove_old) {
  std::error_code ec;
  if (fs::equivalent(output_dir, model_dir, ec) && !ec)
    fail("training config", "output_dir",
         output_dir +
             " is model_name_or_path: the run would write over the model it starts from; choose another folder");
  if (resuming || !fs::exists(output_dir, ec) || fs::is_empty(output_dir, ec)) return;
  if (!overwrite)
    fail("training config", "output_dir",
         output_dir +
             " already holds files (an earlier run?): resume_from_checkpoint=latest continues it, "
             "overwrite_output_dir=true starts afresh there");
  if (!remove_old) return;
  for (const auto& entry : fs::directory_iterator(output_dir)) {
    const std::string name = entry.path().filename().string();
    const bool run_file = name.rfind("checkpoint-", 0) == 0 || name.rfind(".checkpoint-", 0) == 0 || name == "latest" ||
                          name == "best" || name == "metrics.jsonl";
    if (run_file) fs::remove_all(entry.path());
  }
}

void rotate_checkpoints(const std::string& output_dir, int64_t limit) {
  if (limit <= 0) return;
  const auto all = list_checkpoints(output_dir);
  for (size_t i = 0; i + static_cast<size_t>(limit) < all.size(); ++i) {
    log::info("deleting ", all[i].second, " (save_total_limit ", limit, ")");
    fs::remove_all(all[i].second);
  }
}

void write_latest_pointer(const std::string& output_dir, const std::string& checkpoint_dir) {
  io::write_file_atomic((fs::path(output_dir) / "latest").string(),
                        fs::path(checkpoint_dir).filename().string() + "\n");
}

std::optional<std::string> checkpoint_problem(const std::string& dir) {
  const fs::path d(dir);
  if (!fs::exists(d / "trainer_state.json")) return "not a training checkpoint (no trainer_state.json in it)";
  try {
    io::read_json_file((d / "trainer_state.json").string());
    std::vector<std::string> tensors = {(d / "rng_state.safetensors").string()};
    if (fs::exists(d / "adapter_config.json")) {
      tensors.push_back((d / "adapter_model.safetensors").string());
    } else {
      const auto weights = io::resolve_weights(dir);
      if (fs::path(weights).extension() == ".safetensors") tensors.push_back(weights);
    }
    for (const auto& f : optimizer_files(dir)) tensors.push_back(f);  // every rank's shard, or the whole state
    for (const auto& t : tensors) io::SafetensorsFile::open(t);       // the header, and its sizes against the file's
  } catch (const Error& e) {
    return std::string(e.what());
  }
  return std::nullopt;
}

std::string resolve_resume_dir(const std::string& spec, const std::string& output_dir) {
  if (spec != "latest" && spec != "true" && spec != "True") {
    if (const auto problem = checkpoint_problem(spec)) fail(spec, "resume_from_checkpoint", *problem);
    return spec;
  }
  std::vector<std::string> candidates;
  std::ifstream pointer(fs::path(output_dir) / "latest");
  std::string named;
  if (pointer && std::getline(pointer, named) && !named.empty() && fs::is_directory(fs::path(output_dir) / named))
    candidates.push_back((fs::path(output_dir) / named).string());
  const auto all = list_checkpoints(output_dir);
  for (auto it = all.rbegin(); it != all.rend(); ++it)
    if (candidates.empty() || it->second != candidates.front()) candidates.push_back(it->second);
  if (candidates.empty()) fail(output_dir, "resume_from_checkpoint", "no checkpoint-<step> folder to resume from");
  std::string problems;
  for (const auto& c : candidates) {
    const auto problem = checkpoint_problem(c);
    if (!problem) return c;
    log::warn("cannot resume from ", c, ": ", *problem, "; trying the one before it");
    problems += "\n  " + c + ": " + *problem;
  }
  fail(output_dir, "resume_from_checkpoint", "no intact checkpoint to resume from:" + problems);
}

}  // namespace qalign::train
