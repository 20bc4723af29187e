// qalign plan --config FILE --nproc-per-node N [--nnodes M] [--gpu-memory 80GiB] [--json]
// [key=value ...]: the memory a training recipe needs per rank (train/plan.h), whether it fits
// the device, and the cheapest change that makes it fit; and, for scoring, the memory the model's
// weights take in each --dtype / --quantize mode.

#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "qalign/base/error.h"
#include "qalign/config/overrides.h"
#include "qalign/config/train_config.h"
#include "qalign/distributed/job_size.h"
#include "qalign/model/presets.h"
#include "tools/byte_size.h"
#include "tools/commands.h"
#include "tools/int_range.h"
#include "tools/mode_weights.h"
#include "train/device.h"
#include "train/plan.h"

namespace qalign::tools {

namespace {

struct PlanArgs {
  std::string config, preset, gpu_memory;
  int nproc = 1, nnodes = 1;
  bool json = false;
};

// The current CUDA device's memory when there is one, else an 80 GiB card.
int64_t default_device_memory() {
  if (torch::cuda::is_available()) return train::device_total_memory(torch::Device(torch::kCUDA, 0));
  return int64_t{80} << 30;
}

nlohmann::json terms_json(const train::MemoryTerms& t) {
  return {
      {"parameters", t.parameters},   {"gradients", t.gradients}, {"masters", t.masters}, {"optimizer", t.optimizer},
      {"activations", t.activations}, {"buffers", t.buffers},     {"total", t.total}};
}

int run_plan(const PlanArgs& a, const std::vector<std::string>& overrides) {
  const auto config = config::load_train_config(a.config, overrides);
  const auto model_json = (std::filesystem::path(config.model_name_or_path) / "config.json").string();
  if (a.preset.empty() && !std::filesystem::exists(model_json))
    fail(a.config, "model_name_or_path",
         model_json + " not found: point it at a model folder, or give the sizes with --preset (e.g. owl2-7b)");
  const auto model =
      a.preset.empty() ? model::ModelConfig::from_json_file(model_json) : model::preset_config(a.preset, "--preset");
  const int64_t memory = a.gpu_memory.empty() ? default_device_memory() : parse_byte_size(a.gpu_memory, "--gpu-memory");
  const auto plan = train::plan_training(config, model, a.nproc * a.nnodes, memory);
  if (a.json)
    std::cout << nlohmann::json{{"device_per_rank", terms_json(plan.device_per_rank)},
                                {"host_per_rank", terms_json(plan.host_per_rank)},
                                {"device_headroom", plan.device_headroom},
                                {"fits", plan.fits},
                                {"max_micro_batch", plan.max_micro_batch},
                                {"advice", plan.advice},
                                {"weights_per_mode", mode_weights_json(model)}}
                     .dump()
              << "\n";
  else
    std::cout << train::describe(plan) << "\n" << mode_weights_text(model);
  if (a.nproc * a.nnodes == 1 && (config.zero_stage > 0 || config.offload_optimizer != "none"))
    std::cerr << "planned under qalign launch --nproc-per-node 1 (or torchrun): a single process started without a "
                 "launcher has no process group and trains at ZeRO stage 0 without offload\n";
  if (plan.nothing_fits) fail("--gpu-memory", "", plan.advice);
  return 0;
}

}  // namespace

Command add_plan(CLI::App& app) {
  auto* cmd = app.add_subcommand("plan", "Memory per rank of a training recipe, whether it fits, and what would");
  auto a = std::make_shared<PlanArgs>();
  cmd->add_option("--config", a->config, "Training recipe (YAML), as for qalign train")->required();
  // qalign launch's bounds: the world size they give stays far inside an int.
  cmd->add_option("--nproc-per-node", a->nproc, "Processes (GPUs) per node, at most 1024")
      ->required()
      ->check(in_range(1, distributed::kMaxProcPerNode));
  cmd->add_option("--nnodes", a->nnodes, "Nodes, at most 65536")
      ->capture_default_str()
      ->check(in_range(1, distributed::kMaxNodes));
  cmd->add_option("--gpu-memory", a->gpu_memory,
                  "Memory of one device: 80GiB, 141GB, 512MiB (default: this CUDA device's, else 80GiB)");
  cmd->add_option("--preset", a->preset,
                  "Model sizes from a preset (owl2-7b, small, ...) instead of model_name_or_path/config.json");
  cmd->add_flag("--json", a->json, "Print one JSON object, sizes in bytes");
  cmd->allow_extras();
  cmd->footer(
      "Overrides: key=value, --key=value or --key value, as for qalign train, e.g.\n"
      "  qalign plan --config configs/onealign.yaml --nproc-per-node 8 zero_stage=1");
  return {cmd, [cmd, a]() { return run_plan(*a, config::overrides_from_args(cmd->remaining())); }};
}

}  // namespace qalign::tools
