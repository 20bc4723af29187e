// bench train-step: `qalign train`'s own Trainer on synthetic batches of one-turn conversations
// built as the loader builds them, with random pixels: the model of a preset, randomly
// initialised, trained whole (vision tower, abstractor, language model, as the authors' full
// fine-tune) or with the authors' LoRA recipe, at the options' micro-batch, checkpointing and
// ZeRO stage. Under `qalign launch` the ranks train data parallel as `qalign train` does.
#include <torch/csrc/autograd/profiler_legacy.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "qalign/base/error.h"
#include "qalign/config/limits.h"
#include "qalign/conversation.h"
#include "qalign/model/flops.h"
#include "qalign/model/owl2.h"
#include "qalign/model/presets.h"
#include "qalign/prompts.h"
#include "qalign/tokenizer.h"
#include "tools/bench.h"
#include "tools/tokenizer_fit.h"
#include "train/trainer.h"

namespace qalign::tools::bench {

namespace {

// The same batch at every call, in an epoch that does not end.
class SyntheticBatches : public data::BatchSource {
 public:
  explicit SyntheticBatches(data::TrainBatch batch) : batch_(std::move(batch)) {}
  int64_t size() const override { return static_cast<int64_t>(batch_.ids.size()); }
  int64_t batches_per_epoch() const override { return int64_t{1} << 40; }
  void start_epoch(int64_t, int64_t) override {}
  std::optional<data::TrainBatch> next() override { return batch_; }
  int64_t skipped_total() const override { return 0; }

 private:
  data::TrainBatch batch_;
};

}  // namespace

nlohmann::ordered_json train_step(const Common& c, const TrainStepOptions& o) {
  check_runs(c);
  config::check_batch_size(o.batch_size, "--batch-size", "");
  const auto device = parse_device(c.device);
  const auto dtype = parse_dtype(c.dtype);
  const auto config = model::preset_config(c.preset);
  const std::string tokenizer_dir = c.tokenizer.empty() ? default_tokenizer(c.preset) : c.tokenizer;
  const Tokenizer tokenizer(tokenizer_dir);
  check_tokenizer_fits(tokenizer, tokenizer_dir, config, "--preset " + c.preset);
  if (c.optim != "adamw_torch" && c.optim != "adamw_torch_fused")
    fail("--optim", "", "expected adamw_torch or adamw_torch_fused, got \"" + c.optim + "\"");

  const int B = o.batch_size;
  std::vector<SupervisedSample> samples;
  data::TrainBatch batch;
  const int64_t S = config.vision.image_size;
  for (int b = 0; b < B; ++b) {
    const auto& questions = iqa_questions();
    const std::string question = questions[static_cast<size_t>(b) % questions.size()];
    const std::string word = level_words()[static_cast<size_t>(b) % level_words().size()];
    samples.push_back(build_supervised_sample(
        tokenizer,
        {{"human", question + "\n" + kImageToken}, {"gpt", training_answer(Task::kQuality, Media::kImage, word)}}, true,
        2048));
    batch.ids.push_back("synthetic" + std::to_string(b));
    batch.pixels.push_back(torch::randn({1, 3, S, S}));
    batch.mos.push_back(std::nan(""));
  }
  batch.text = collate_supervised(samples, 0, 2048);
  batch.level_probs.resize(static_cast<size_t>(B));

  config::TrainConfig tc;
  tc.model_name_or_path = tokenizer_dir;
  tc.output_dir =
      (std::filesystem::temp_directory_path() / ("qalign-bench-train-" + std::to_string(::getpid()))).string();
  tc.max_steps = c.warmup + c.repeats;
  tc.per_device_train_batch_size = B;
  tc.learning_rate = 1e-5;
  tc.lr_scheduler_type = "constant";
  tc.warmup_ratio = 0;
  tc.bf16 = dtype != torch::kFloat32;
  tc.gradient_checkpointing = o.gradient_checkpointing;
  tc.zero_stage = o.zero_stage;
  tc.offload_optimizer = o.offload ? "cpu" : "none";
  tc.lora_enable = o.lora;
  tc.optim = c.optim;
  tc.device = c.device;
  tc.dataloader_num_workers = 0;
  tc.logging_steps = 1;
  tc.save_steps = int64_t{1} << 40;

  train::TrainerOptions options;
  options.build_model = [&](torch::Dtype dt, torch::Device dev) {
    return model::Owl2ForCausalLM(config, torch::TensorOptions().dtype(dt).device(dev));
  };
  options.batches = std::make_shared<SyntheticBatches>(std::move(batch));
  options.write_final_model = false;
  int64_t parameters = 0, trainable = 0;
  {
    train::Trainer trainer(tc, std::move(options));
    for (const auto& p : trainer.model()->parameters()) {
      parameters += p.numel();
      if (p.requires_grad()) trainable += p.numel();
    }
    if (c.trace.empty()) {
      trainer.train();
    } else {  // the whole run under the profiler, as a Chrome trace
      torch::autograd::profiler::RecordProfile guard(c.trace);
      trainer.train();
    }
  }

  // The trainer's own figures: each step's wall time (logging_steps 1) and memory.
  std::vector<double> ms;
  nlohmann::json memory, memory_report;
  std::ifstream in(tc.output_dir + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("memory_report")) memory_report = j["memory_report"];
    if (j.contains("memory")) memory = j["memory"];
    if (j.value("step", 0) > c.warmup) ms.push_back(j["ms_per_step"].get<double>());
  }
  std::filesystem::remove_all(tc.output_dir);
  if (ms.empty()) fail("bench train-step", "", "this rank logged no step (rank 0 reports for all)");
  const double seconds = median(ms) / 1e3;
  const auto ranks = static_cast<int64_t>(memory.is_array() ? memory.size() : 1);
  const double peak = matmul_peak(device, dtype, c.warmup, c.repeats);

  double flops = 0;
  int64_t text_tokens = 0;
  for (const auto& s : samples) {
    const auto n = static_cast<int64_t>(s.input_ids.size()) - 1;  // the image placeholder becomes the visual tokens
    text_tokens += n;
    const auto supervised =
        std::count_if(s.labels.begin() + 1, s.labels.end(), [](int64_t l) { return l != kIgnoreIndex; });
    flops += 3 * model::forward_flops(config, 1, n, supervised).total();
  }
  const double llm_tokens = static_cast<double>(text_tokens + B * config.tokens_per_image());
  return {{"bench", "train-step"},
          {"preset", c.preset},
          {"batch_size", B},
          {"ranks", ranks},
          {"device", device_name(device)},
          {"dtype", c.dtype},
          {"optim", c.optim},
          {"gradient_checkpointing", o.gradient_checkpointing},
          {"zero_stage", o.zero_stage},
          {"offload_optimizer", tc.offload_optimizer},
          {"lora", o.lora},
          {"step_ms", seconds * 1e3},
          {"samples_per_s", static_cast<double>(B * ranks) / seconds},
          {"tokens_per_s", llm_tokens * static_cast<double>(ranks) / seconds},
          {"flops_per_step", flops},
          {"achieved_flops", flops / seconds},
          {"peak_flops", peak},
          {"mfu", flops / seconds / peak},
          {"parameters", parameters},
          {"trainable_parameters", trainable},
          {"memory", memory},
          {"memory_report", memory_report}};
}

}  // namespace qalign::tools::bench
