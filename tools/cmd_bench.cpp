// qalign bench train-step | score | data: how fast each path runs, against the machine's own
// limit measured in the same run (tools/bench.h). A table by default, one JSON object with --json.
#include <cstdio>
#include <iostream>
#include <memory>

#include "qalign/model/presets.h"
#include "tools/bench.h"
#include "tools/commands.h"
#include "tools/quantize_flags.h"

namespace qalign::tools {

namespace {

struct BenchArgs {
  bench::Common common;
  bench::TrainStepOptions train;
  model::QuantizeOptions quantize;  // score
  int images_per_thread = 64;
  std::vector<int> batch_sizes = {1, 2, 4, 8}, threads = {1, 2};
  bool json = false;
};

std::string fmt(double v, const char* spec = "%.4g") {
  char buf[48];
  std::snprintf(buf, sizeof buf, spec, v);
  return buf;
}

void print(const nlohmann::ordered_json& j, bool json) {
  if (json) {
    std::cout << j.dump() << "\n";
    return;
  }
  const std::string bench = j["bench"];
  if (bench == "train-step") {
    std::cout << "train-step  preset " << j["preset"].get<std::string>() << ", batch " << j["batch_size"] << ", "
              << j["dtype"].get<std::string>() << ", " << j["optim"].get<std::string>() << " on "
              << j["device"].get<std::string>() << "\n"
              << "  step            " << fmt(j["step_ms"], "%.1f") << " ms\n"
              << "  samples/s       " << fmt(j["samples_per_s"], "%.2f") << "\n"
              << "  LLM tokens/s    " << fmt(j["tokens_per_s"], "%.0f") << "\n"
              << "  FLOPs/step      " << fmt(j["flops_per_step"]) << "\n"
              << "  achieved FLOP/s " << fmt(j["achieved_flops"]) << "\n"
              << "  matmul peak     " << fmt(j["peak_flops"]) << " FLOP/s\n"
              << "  MFU             " << fmt(100 * j["mfu"].get<double>(), "%.1f") << " %\n"
              << "  ranks " << j["ranks"] << ", ZeRO stage " << j["zero_stage"]
              << (j["lora"].get<bool>() ? ", LoRA" : "")
              << (j["gradient_checkpointing"].get<bool>() ? ", activation checkpointing" : "") << "\n";
    for (const auto& r : j["memory"])
      std::cout << "  rank " << r["rank"] << " peak    " << fmt(r["peak_allocated"].get<double>() / (1 << 20), "%.0f")
                << " MiB " << (r["device"] == "cuda" ? "allocated" : "resident") << "\n";
  } else if (bench == "score") {
    const auto q = j["quantize"].get<std::string>() + (j.value("quantize_vision", false) ? " (vision too)" : "");
    std::cout << "score  preset " << j["preset"].get<std::string>() << ", " << j["dtype"].get<std::string>()
              << (j["quantize"] == "none" ? "" : " with " + q + " weights") << " on " << j["device"].get<std::string>()
              << ", " << fmt(j["flops_per_image"]) << " FLOPs/image, matmul peak " << fmt(j["peak_flops"])
              << " FLOP/s\n"
              << "  batch   ms/batch   images/s   ms/image   MFU\n";
    for (const auto& r : j["batches"])
      std::printf("  %5d %10.1f %10.2f %10.2f %5.1f %%\n", r["batch_size"].get<int>(), r["batch_ms"].get<double>(),
                  r["images_per_s"].get<double>(), r["ms_per_image"].get<double>(), 100 * r["mfu"].get<double>());
  } else {
    std::cout << "data  JPEG (quality 90) -> 448x448 tensors; ours = decode + pad + PIL-exact bicubic + normalise\n"
              << "  image       threads   images/s   per thread   OpenCV loop   ours/OpenCV\n";
    for (const auto& r : j["rows"])
      std::printf("  %-10s %7d %10.1f %12.1f %13.1f %13.2f\n", r["image"].get<std::string>().c_str(),
                  r["threads"].get<int>(), r["images_per_s"].get<double>(), r["images_per_s_per_thread"].get<double>(),
                  r["opencv_images_per_s"].get<double>(), r["ratio_to_opencv"].get<double>());
  }
  std::cout.flush();
}

void add_common(CLI::App* sub, bench::Common& c) {
  std::string presets;
  for (const auto& n : model::preset_names()) presets += (presets.empty() ? "" : " | ") + n;
  sub->add_option("--preset", c.preset, presets)->capture_default_str();
  sub->add_option(
      "--tokenizer", c.tokenizer,
      "Tokenizer folder (default: tests/fixtures/qalign-tiny/model for tiny, else tests/fixtures/llama2-tokenizer)");
  sub->add_option("--device", c.device, "cpu | cuda")->capture_default_str();
  sub->add_option("--dtype", c.dtype, "float32 | bfloat16")->capture_default_str();
  sub->add_option("--warmup", c.warmup, "Untimed runs first")->capture_default_str();
  sub->add_option("--repeats", c.repeats, "Timed runs; the median is reported")->capture_default_str();
}

}  // namespace

Command add_bench(CLI::App& app) {
  auto* cmd = app.add_subcommand("bench", "Measure training, scoring and data throughput against this machine's peak");
  cmd->require_subcommand(1);
  auto a = std::make_shared<BenchArgs>();
  cmd->add_flag("--json", a->json, "One JSON object instead of the table");

  auto* train = cmd->add_subcommand("train-step",
                                    "qalign train's step (forward, backward, AdamW) on a preset model; MFU, memory");
  add_common(train, a->common);
  train->add_option("--batch-size", a->train.batch_size, "Conversations per step and rank (the micro-batch)")
      ->capture_default_str();
  train->add_flag("--gradient-checkpointing", a->train.gradient_checkpointing,
                  "Activation checkpointing of every block");
  train->add_option("--zero-stage", a->train.zero_stage, "0, 1, 2 or 3 (under qalign launch, with one rank or several)")
      ->check(CLI::Range(0, 3))
      ->capture_default_str();
  train->add_flag("--offload", a->train.offload, "offload_optimizer: cpu (ZeRO's masters and moments in host memory)");
  train->add_flag("--lora", a->train.lora, "The authors' LoRA recipe (q_proj + v_proj.multiway.1, abstractor trained)");
  train->add_option("--trace", a->common.trace, "Also write a Chrome trace (chrome://tracing) of the run");
  train->add_option("--optim", a->common.optim, "adamw_torch | adamw_torch_fused (the trainer's optim)")
      ->capture_default_str();
  train->add_flag("--json", a->json, "One JSON object instead of the table");

  auto* score = cmd->add_subcommand("score", "Scoring images/s and latency by batch size");
  add_common(score, a->common);
  add_quantize_flags(score, a->quantize);
  score->add_option("--batch-sizes", a->batch_sizes, "Batch sizes to time")->delimiter(',')->capture_default_str();
  score->add_flag("--json", a->json, "One JSON object instead of the table");

#ifdef QALIGN_WITH_OPENCV
  auto* data = cmd->add_subcommand("data", "JPEG decode + preprocess images/s per thread, and a plain OpenCV loop");
  data->add_option("--threads", a->threads, "Worker counts to time")->delimiter(',')->capture_default_str();
  data->add_option("--images-per-thread", a->images_per_thread, "1024x768 decodes per worker (an eighth for 4000x3000)")
      ->capture_default_str();
  data->add_flag("--json", a->json, "One JSON object instead of the table");
#endif

  return {cmd, [=]() {
            if (*train) print(bench::train_step(a->common, a->train), a->json);
            if (*score) print(bench::score(a->common, a->batch_sizes, a->quantize), a->json);
#ifdef QALIGN_WITH_OPENCV
            if (*data) print(bench::data(a->threads, a->images_per_thread), a->json);
#endif
            return 0;
          }};
}

}  // namespace qalign::tools
