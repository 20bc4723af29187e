// qalign score: images and videos -> level probabilities and scores.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "data/image_decode.h"
#include "data/media_type.h"
#include "data/inputs.h"
#include "data/preprocess.h"
#include "data/video.h"
#include "qalign/compat.h"
#include "qalign/error.h"
#include "qalign/log.h"
#include "qalign/io/lora_folder.h"
#include "qalign/model/weights.h"
#include "qalign/scorer.h"
#include "tools/commands.h"

namespace qalign::tools {

namespace {

struct ScoreOptions {
  std::string model, lora, tokenizer, task = "quality", dtype = "float32", device = "cpu", prompt = "scorer";
  int batch_size = 8;
  bool json = false;
  std::vector<std::string> inputs;
};

struct Item {
  std::string path;
  Media media;
  torch::Tensor pixels;  // [F,3,S,S]
};

// A one-line bar on stderr, redrawn in place; only on a terminal.
class Progress {
 public:
  Progress(size_t total, bool enabled) : total_(total), enabled_(enabled && ::isatty(2)) {}
  void update(size_t done) {
    if (!enabled_) return;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double rate = s > 0 ? done / s : 0;
    const int width = 30, filled = static_cast<int>(width * done / std::max<size_t>(total_, 1));
    std::fprintf(stderr, "\r[%s%s] %zu/%zu %.1f items/s ETA %.0fs ", std::string(filled, '#').c_str(),
                 std::string(width - filled, '.').c_str(), done, total_, rate,
                 rate > 0 ? (total_ - done) / rate : 0.0);
    if (done == total_) std::fprintf(stderr, "\n");
  }

 private:
  size_t total_;
  bool enabled_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

void print_row(const Item& it, Task task, const LevelScores& s, int64_t b, bool json) {
  const auto p = s.probs[b];
  const int64_t level = s.level[b].item<int64_t>();
  if (json) {
    nlohmann::json probs = nlohmann::json::object();
    for (size_t k = 0; k < kLevelWords.size(); ++k) probs[kLevelWords[k]] = p[k].item<double>();
    const nlohmann::json row = {{"input", it.path},
                                {"task", task_name(task)},
                                {"media", media_name(it.media)},
                                {"score", s.score5[b].item<double>()},
                                {"score01", s.score01[b].item<double>()},
                                {"level", kLevelWords[level]},
                                {"probs", probs}};
    std::cout << row.dump() << "\n";
  } else {
    std::printf("%-40s %-5s %6.4f %6.4f  %-9s", it.path.c_str(), media_name(it.media).c_str(), s.score5[b].item<double>(),
                s.score01[b].item<double>(), kLevelWords[level]);
    for (size_t k = 0; k < kLevelWords.size(); ++k) std::printf(" %.4f", p[k].item<double>());
    std::printf("\n");
  }
  std::fflush(stdout);
}

int run_score(const ScoreOptions& o) {
  const Task task = parse_task(o.task, "--task", "task");
  const PromptStyle style = parse_prompt_style(o.prompt, "--prompt", "prompt");
  if (o.dtype != "float32" && o.dtype != "bfloat16") fail("--dtype", "", "expected float32 or bfloat16, got " + o.dtype);
  if (o.device != "cpu" && o.device != "cuda") fail("--device", "", "expected cpu or cuda, got " + o.device);
  if (o.device == "cuda" && !compat::cuda_available()) fail("--device", "", "cuda requested but no CUDA device is visible");
  if (o.batch_size < 1) fail("--batch-size", "", "must be at least 1");
  const auto dtype = o.dtype == "bfloat16" ? torch::kBFloat16 : torch::kFloat32;
  const torch::Device device = o.device == "cuda" ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);

  Scorer scorer(io::load_pretrained_with_lora(o.model, o.lora, dtype, device), Tokenizer(o.tokenizer.empty() ? o.model : o.tokenizer),
                style);
  const auto inputs = data::expand_inputs(o.inputs);
  if (inputs.empty()) fail("INPUT", "", "no images or videos to score");
  if (!o.json)
    std::printf("%-40s %-5s %6s %6s  %-9s %s\n", "input", "media", "score", "0..1", "level",
                "p(excellent good fair poor bad)");
  Progress progress(inputs.size(), inputs.size() > 8);
  size_t failed = 0, done = 0;
  std::vector<Item> batch;
  auto flush = [&] {
    if (batch.empty()) return;
    std::vector<torch::Tensor> pixels;
    for (const auto& it : batch) pixels.push_back(it.pixels);
    const auto scores = scorer.score(pixels, task, batch.front().media);
    for (size_t b = 0; b < batch.size(); ++b) print_row(batch[b], task, scores, static_cast<int64_t>(b), o.json);
    done += batch.size();
    progress.update(done + failed);
    batch.clear();
  };
  for (const auto& path : inputs) {
    Item it{path, data::is_video_path(path) ? Media::kVideo : Media::kImage, {}};
    try {
      it.pixels = it.media == Media::kVideo ? data::load_video_tensor(path, scorer.image_size())
                                            : data::load_image_tensor(path, scorer.image_size()).unsqueeze(0);
    } catch (const Error& e) {
      log::error("skipped: ", e.what());
      ++failed;
      progress.update(done + failed);
      continue;
    }
    if (!batch.empty() && batch.front().media != it.media) flush();
    batch.push_back(std::move(it));
    if (static_cast<int>(batch.size()) >= o.batch_size) flush();
  }
  flush();
  if (failed) log::error(failed, " of ", inputs.size(), " inputs could not be scored");
  return failed ? 1 : 0;
}

}  // namespace

Command add_score(CLI::App& app) {
  auto o = std::make_shared<ScoreOptions>();
  auto* cmd = app.add_subcommand("score", "Score images and videos (quality or aesthetics, 1-5 and 0-1)");
  cmd->add_option("--model", o->model, "Model folder (config.json + weights)")->required();
  cmd->add_option("--lora", o->lora, "LoRA folder (PEFT or the authors' layout) applied to --model and merged");
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer folder (default: the model folder)");
  cmd->add_option("--task", o->task, "quality | aesthetics")->capture_default_str();
  cmd->add_option("--prompt", o->prompt, "scorer (the released scorer's prompt) | eval (the evaluation scripts')")
      ->capture_default_str();
  cmd->add_option("--batch-size", o->batch_size, "Items per forward pass")->capture_default_str();
  cmd->add_option("--dtype", o->dtype, "float32 | bfloat16")->capture_default_str();
  cmd->add_option("--device", o->device, "cpu | cuda")->capture_default_str();
  cmd->add_flag("--json", o->json, "One JSON object per line");
  cmd->add_option("inputs", o->inputs, "Image or video files, folders (recursed), @list.txt")->required();
  return {cmd, [o] { return run_score(*o); }};
}

}  // namespace qalign::tools
