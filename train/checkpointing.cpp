#include "train/checkpointing.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <set>

#include "qalign/base/atomic_file.h"
#include "qalign/base/error.h"
#include "qalign/base/json_file.h"
#include "qalign/base/log.h"
#include "qalign/base/text.h"
#include "qalign/io/checkpoint.h"
#include "qalign/io/output_guard.h"
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

// "checkpoint-<digits>" -> step, else -1 (also for a step past int64).
int64_t checkpoint_step(const std::string& name) {
  const std::string prefix = "checkpoint-";
  if (name.compare(0, prefix.size(), prefix) != 0 || name.size() == prefix.size()) return -1;
  const std::string digits = name.substr(prefix.size());
  if (!std::all_of(digits.begin(), digits.end(), [](unsigned char c) { return std::isdigit(c); })) return -1;
  int64_t step = -1;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), step);
  return ec == std::errc() && end == digits.data() + digits.size() ? step : -1;
}

// What overwrite_output_dir removes: an earlier run's checkpoints, pointers and metrics.
bool is_run_entry(const std::string& name) {
  return name.rfind("checkpoint-", 0) == 0 || name.rfind(".checkpoint-", 0) == 0 || name == "latest" ||
         name == "best" || name == "metrics.jsonl";
}

// `p` made absolute, without links, "." or "..", and without a trailing separator.
std::string resolved(const std::string& p) {
  std::error_code ec;
  auto out = fs::weakly_canonical(fs::absolute(p), ec);
  if (ec) out = fs::absolute(p);
  std::string s = out.lexically_normal().string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

// The first line of output_dir/latest, read within a bound (it holds one folder name).
std::string read_latest_name(const fs::path& pointer_file) {
  std::ifstream in(pointer_file);
  std::string head(4096, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(in.gcount()));
  return head.substr(0, head.find('\n'));
}

}  // namespace

ModelSideFiles read_model_side_files(const std::string& model_dir) {
  ModelSideFiles files;
  for (const char* name : kModelSideFiles) {
    const fs::path from = fs::path(model_dir) / name;
    if (fs::exists(from)) files[name] = io::read_file(from.string());
  }
  return files;
}

void write_model_folder(const std::string& dir, const io::StateDict& weights, const nlohmann::json& model_config,
                        const ModelSideFiles& side_files, uint64_t max_shard_bytes) {
  write_model_folder(
      dir, [&](const std::string& d) { io::save_weights(d, weights, io::WeightFormat::Safetensors, max_shard_bytes); },
      model_config, side_files);
}

namespace {

// A model folder's files that say which weights it holds: moved in last, so that until then a
// loader finds the old weights whole, and from then on the new ones.
bool names_the_weights(const std::string& name) {
  return name == "model.safetensors" || name == "pytorch_model.bin" || name == "config.json" ||
         ends_with(name, ".index.json");
}

// Moves every file of `staging` into `dir` (renames: no space needed), then removes the weight
// files of `dir` that the new ones do not replace.
void move_into(const fs::path& staging, const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(staging)) names.push_back(e.path().filename().string());
  std::stable_partition(names.begin(), names.end(), [](const std::string& n) { return !names_the_weights(n); });
  for (const auto& n : names) fs::rename(staging / n, dir / n);
  io::remove_weight_files(dir.string(), std::set<std::string>(names.begin(), names.end()));
  fs::remove(staging);
  sync_folder(dir);
}

// Removes the staging folder unless its files were moved into place.
struct StagingFolder {
  fs::path path;
  bool moved = false;
  ~StagingFolder() {
    std::error_code ec;
    if (!moved) fs::remove_all(path, ec);
  }
};

}  // namespace

void write_model_folder(const std::string& dir, const std::function<void(const std::string&)>& write_weights,
                        const nlohmann::json& model_config, const ModelSideFiles& side_files) {
  // Everything is written into a staging folder inside `dir` first, and moved in once all of it is
  // on disk: a write that fails (the disk fills) leaves the folder as it was, old weights included.
  fs::create_directories(dir);
  StagingFolder staging{fs::path(dir) / ".qalign-partial"};
  fs::remove_all(staging.path);  // a killed earlier write's
  fs::create_directories(staging.path);
  write_weights(staging.path.string());
  io::write_file_atomic((staging.path / "config.json").string(), model_config.dump(2) + "\n");
  for (const auto& [name, bytes] : side_files) io::write_file_atomic((staging.path / name).string(), bytes);
  // The processor must crop to this model's image size; a tokenizer's folder borrowed from a model
  // of another size (qalign init) brings another, and a folder without one gets CLIP's.
  const int64_t size = model_config.at("visual_config").at("visual_model").at("image_size").get<int64_t>();
  const auto processor = staging.path / "preprocessor_config.json";
  bool consistent = fs::exists(processor);
  try {
    if (consistent) check_preprocessor_config(staging.path.string(), size);
  } catch (const Error&) {
    consistent = false;
  }
  if (!consistent) io::write_file_atomic(processor.string(), clip_preprocessor_config(size).dump(2) + "\n");
  sync_folder(staging.path);
  move_into(staging.path, dir);
  staging.moved = true;
}

void write_checkpoint(const std::string& dir, const CheckpointContents& c) {
  const fs::path final_dir(dir);
  const fs::path parent = final_dir.parent_path();
  const fs::path tmp = parent / ("." + final_dir.filename().string() + ".tmp");
  fs::remove_all(tmp);
  if (c.write_model)
    c.write_model(tmp.string());
  else
    write_model_folder(tmp.string(), c.model, c.model_config, c.side_files);
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

std::string run_lock_file(const std::string& output_dir) {
  return (fs::path(output_dir) / ".qalign-train.lock").string();
}

bool is_inside(const std::string& path, const std::string& dir) {
  const std::string p = resolved(path), d = resolved(dir);
  return p == d || (p.size() > d.size() && p.compare(0, d.size(), d) == 0 && (d == "/" || p[d.size()] == '/'));
}

void check_output_dir(const std::string& output_dir, const std::string& model_dir, bool resuming, bool overwrite) {
  std::error_code ec;
  if (fs::equivalent(output_dir, model_dir, ec) && !ec)
    fail("training config", "output_dir",
         output_dir +
             " is model_name_or_path: the run would write over the model it starts from; choose another folder");
  if (fs::exists(output_dir, ec) && !fs::is_directory(output_dir, ec))
    fail("training config", "output_dir", output_dir + " exists and is not a folder");
  if (resuming || !overwrite || !fs::is_directory(output_dir, ec)) return;
  for (const auto& entry : fs::directory_iterator(output_dir, ec))
    if (is_run_entry(entry.path().filename().string()) && is_inside(model_dir, entry.path().string()))
      fail("training config", "overwrite_output_dir",
           "model_name_or_path " + model_dir + " is " + entry.path().string() + " in output_dir " + output_dir +
               ", which overwrite_output_dir=true removes with the earlier run: copy the model out of output_dir "
               "first, or choose another output_dir");
}

void check_model_survives(const std::string& output_dir, const std::string& model_dir, int64_t from_step,
                          int64_t to_step, bool writes_best) {
  if (!is_inside(model_dir, output_dir)) return;
  const auto refuse = [&](const std::string& folder, const std::string& why) {
    fail("training config", "model_name_or_path",
         model_dir + " is " + folder + ", which this run " + why +
             ": copy the model out of output_dir first, or choose another output_dir");
  };
  for (const auto& [step, path] : list_checkpoints(output_dir))
    if (step > from_step && step <= to_step && is_inside(model_dir, path))
      refuse(path, "writes anew at step " + std::to_string(step));
  const auto best = (fs::path(output_dir) / "best").string();
  if (writes_best && is_inside(model_dir, best)) refuse(best, "replaces when evaluation improves");
  log::info("model_name_or_path ", model_dir, " is in output_dir: this run keeps it (save_total_limit neither counts",
            " nor removes it)");
}

void prepare_output_dir(const std::string& output_dir, bool resuming, bool overwrite, bool remove_old) {
  std::error_code ec;
  if (resuming || !fs::exists(output_dir, ec)) return;
  const std::string lock = fs::path(run_lock_file(output_dir)).filename().string();
  bool holds_files = false;
  for (const auto& entry : fs::directory_iterator(output_dir, ec))
    holds_files = holds_files || entry.path().filename().string() != lock;
  if (!holds_files) return;
  if (!overwrite)
    fail("training config", "output_dir",
         output_dir +
             " already holds files (an earlier run?): resume_from_checkpoint=latest continues it, "
             "overwrite_output_dir=true starts afresh there");
  if (!remove_old) return;
  for (const auto& entry : fs::directory_iterator(output_dir))
    if (is_run_entry(entry.path().filename().string())) fs::remove_all(entry.path());
}

void rotate_checkpoints(const std::string& output_dir, int64_t limit, const std::string& keep) {
  if (limit <= 0) return;
  auto all = list_checkpoints(output_dir);
  if (!keep.empty())
    all.erase(std::remove_if(all.begin(), all.end(), [&](const auto& c) { return is_inside(keep, c.second); }),
              all.end());
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
  const fs::path pointer = fs::path(output_dir) / "latest";
  const std::string named = fs::exists(pointer) ? read_latest_name(pointer) : "";
  // Only a folder of this run: a path elsewhere would continue another run as if it were this one.
  if (!named.empty() && checkpoint_step(named) < 0)
    fail(pointer.string(), "",
         "names '" + named.substr(0, 200) + "', not a checkpoint-<step> folder of " + output_dir +
             ": write the name of one of its checkpoints there, or remove the file to resume from the newest");
  if (!named.empty() && fs::is_directory(fs::path(output_dir) / named))
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
