// qalign init (--config MODEL.json | --preset NAME) --tokenizer DIR --out DIR [--seed N]: a freshly
// initialised model folder in the Hugging Face layout, for training from scratch (the demo's small
// model) or for timing a preset's whole scoring pipeline.
#include <torch/torch.h>

#include <chrono>
#include <memory>
#include <string>

#include "qalign/base/error.h"
#include "qalign/base/log.h"
#include "qalign/io/checkpoint.h"
#include "qalign/io/output_guard.h"
#include "qalign/io/weights.h"
#include "qalign/model/abstractor.h"
#include "qalign/model/config.h"
#include "qalign/model/init_weights.h"
#include "qalign/model/owl2.h"
#include "qalign/model/presets.h"
#include "qalign/tokenizer.h"
#include "tools/byte_size.h"
#include "tools/commands.h"
#include "tools/tokenizer_fit.h"
#include "tools/weight_dtype.h"
#include "train/checkpointing.h"

namespace qalign::tools {

namespace {

struct InitArgs {
  std::string config, preset, tokenizer, out, dtype = "float32", max_shard_size = "5GB";
  uint64_t seed = 0;
  bool overwrite = false;
};

// The values of the fixed buffers (the abstractor's sin-cos positions), from one real attention
// module: they depend on the config only, and that module is small.
io::StateDict fixed_buffers(const model::ModelConfig& config) {
  model::SkipInitGuard uninitialised;
  model::AbstractorAttention attention(config.abstractor, torch::TensorOptions().dtype(torch::kFloat32));
  io::StateDict out;
  for (const auto& b : attention->named_buffers()) out[b.key()] = b.value();
  return out;
}

int run_init(const InitArgs& a) {
  if (a.config.empty() && a.preset.empty()) fail("--config", "", "give a config.json, or --preset NAME");
  const auto dtype = parse_weight_dtype(a.dtype);
  const uint64_t shard_bytes = static_cast<uint64_t>(parse_byte_size(a.max_shard_size, "--max-shard-size"));
  auto config =
      a.preset.empty() ? model::ModelConfig::from_json_file(a.config) : model::preset_config(a.preset, "--preset");
  const std::string source = a.preset.empty() ? a.config : "--preset " + a.preset;
  if (!a.overwrite)
    io::require_new_folder(a.out, "--out",
                           "--overwrite writes there, replacing its old weights once the new ones are written");
  const Tokenizer tokenizer(a.tokenizer);
  check_tokenizer_fits(tokenizer, a.tokenizer, config, source);
  const auto started = std::chrono::steady_clock::now();
  // The model's names and shapes from the meta device; each tensor is drawn (in float32, in the
  // model's order from one generator, so the values do not depend on dtype or sharding) only when
  // its shard is written: one shard in memory, whatever the model's size.
  model::Owl2ForCausalLM shapes(config, torch::TensorOptions().device(torch::kMeta));
  std::vector<io::TensorSpec> specs;
  for (const auto& p : shapes->named_parameters()) specs.push_back({p.key(), p.value().sizes().vec(), dtype});
  for (const auto& b : shapes->named_buffers()) specs.push_back({b.key(), b.value().sizes().vec(), dtype});
  const auto ranges = a.preset.empty() ? model::init_ranges_from_config_file(a.config) : model::InitRanges{};
  const auto buffers = fixed_buffers(config);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(a.seed);
  const auto draw = [&](const io::TensorSpec& spec) {
    for (const auto& [suffix, value] : buffers)
      if (spec.name.size() > suffix.size() &&
          spec.name.compare(spec.name.size() - suffix.size(), suffix.size(), suffix) == 0)
        return value.to(dtype);
    auto t = torch::empty(spec.shape, torch::kFloat32);
    model::initialize_parameter(spec.name, t, ranges, gen);
    return t.to(dtype);
  };
  config.torch_dtype = a.dtype;
  train::write_model_folder(
      a.out,
      [&](const std::string& dir) { io::save_weights(dir, specs, draw, io::WeightFormat::Safetensors, shard_bytes); },
      config.to_json(), train::read_model_side_files(a.tokenizer));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  log::info("wrote ", a.out, ": ", model::count_parameters(*shapes), " parameters in ", a.dtype, " drawn with seed ",
            a.seed, " in ", static_cast<int64_t>(seconds + 0.5), " s");
  return 0;
}

}  // namespace

Command add_init(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("init", "A randomly initialised model folder from a config.json, to train from scratch");
  auto a = std::make_shared<InitArgs>();
  auto* config = cmd->add_option("--config", a->config, "Model config.json (the Hugging Face mPLUG-Owl2 layout)");
  auto* preset = cmd->add_option("--preset", a->preset, "A built-in size instead: tiny, small, owl2-7b, owl2-7b-<N>l");
  config->excludes(preset);
  cmd->add_option("--tokenizer", a->tokenizer, "Folder with tokenizer.model (+ tokenizer_config.json)")->required();
  cmd->add_option("--out", a->out, "Model folder to write")->required();
  cmd->add_flag("--overwrite", a->overwrite, "Write into --out even if it holds files (its old weights are replaced)");
  cmd->add_option("--seed", a->seed, "Seed of the initial weights")->capture_default_str();
  cmd->add_option("--dtype", a->dtype, "bfloat16 | float16 | float32 (the values are drawn in float32)")
      ->capture_default_str();
  cmd->add_option("--max-shard-size", a->max_shard_size, "Largest weights file, e.g. 5GB, 500MB (one is in memory)")
      ->capture_default_str();
  return {cmd, [a]() { return run_init(*a); }};
}

}  // namespace qalign::tools
