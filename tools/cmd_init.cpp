// qalign init (--config MODEL.json | --preset NAME) --tokenizer DIR --out DIR [--seed N]: a freshly
// initialised model folder in the Hugging Face layout, for training from scratch (the demo's small
// model) or for timing a preset's whole scoring pipeline.
#include <torch/torch.h>

#include <memory>
#include <string>

#include "qalign/base/error.h"
#include "qalign/base/log.h"
#include "qalign/io/output_guard.h"
#include "qalign/io/weights.h"
#include "qalign/model/config.h"
#include "qalign/model/init_weights.h"
#include "qalign/model/owl2.h"
#include "qalign/model/presets.h"
#include "qalign/tokenizer.h"
#include "tools/commands.h"
#include "train/checkpointing.h"

namespace qalign::tools {

namespace {

struct InitArgs {
  std::string config, preset, tokenizer, out;
  uint64_t seed = 0;
  bool overwrite = false;
};

int run_init(const InitArgs& a) {
  if (a.config.empty() && a.preset.empty()) fail("--config", "", "give a config.json, or --preset NAME");
  const auto config =
      a.preset.empty() ? model::ModelConfig::from_json_file(a.config) : model::preset_config(a.preset, "--preset");
  const std::string source = a.preset.empty() ? a.config : "--preset " + a.preset;
  if (!a.overwrite) io::require_new_folder(a.out, "--out", "--overwrite writes there, removing its old weights first");
  const Tokenizer tokenizer(a.tokenizer);
  if (tokenizer.vocab_size() > config.vocab_size)
    fail(source, "vocab_size",
         std::to_string(config.vocab_size) + " is smaller than the tokenizer's " +
             std::to_string(tokenizer.vocab_size()) + " pieces (" + a.tokenizer + ")");
  model::Owl2ForCausalLM m(config);
  model::initialize_weights(*m, a.preset.empty() ? model::init_ranges_from_config_file(a.config) : model::InitRanges{},
                            a.seed);
  if (a.overwrite) io::remove_weight_files(a.out);
  train::write_model_folder(a.out, io::state_dict(*m), config.to_json(), a.tokenizer);
  log::info("wrote ", a.out, ": ", model::count_parameters(*m), " parameters drawn with seed ", a.seed);
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
  cmd->add_flag("--overwrite", a->overwrite, "Write into --out even if it holds files (its old weights are removed)");
  cmd->add_option("--seed", a->seed, "Seed of the initial weights")->capture_default_str();
  return {cmd, [a]() { return run_init(*a); }};
}

}  // namespace qalign::tools
