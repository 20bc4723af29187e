// qalign export: a model folder (optionally with a LoRA folder merged in) -> the authors' Hugging
// Face layout (config.json, model.safetensors or shards + model.safetensors.index.json, tokenizer
// and preprocessor files), in the dtype asked for, loadable by their Python code.
#include <filesystem>
#include <nlohmann/json.hpp>

#include "qalign/base/error.h"
#include "qalign/base/json_file.h"
#include "qalign/base/log.h"
#include "qalign/io/checkpoint.h"
#include "qalign/io/lora_folder.h"
#include "qalign/io/output_guard.h"
#include "qalign/io/weights.h"
#include "tools/byte_size.h"
#include "tools/commands.h"
#include "tools/weight_dtype.h"
#include "train/checkpointing.h"

namespace qalign::tools {

namespace fs = std::filesystem;

namespace {

struct ExportOptions {
  std::string checkpoint, lora, out, dtype = "bfloat16", max_shard_size = "5GB";
  bool merge_lora = false, overwrite = false;
};

int run_export(const ExportOptions& o) {
  const auto dtype = parse_weight_dtype(o.dtype);
  const uint64_t shard_bytes = static_cast<uint64_t>(parse_byte_size(o.max_shard_size, "--max-shard-size"));
  std::string lora_dir = o.lora;
  // A LoRA training output as --checkpoint: its adapter_config.json names the base model.
  std::string base = o.checkpoint;
  if (lora_dir.empty() && fs::exists(fs::path(o.checkpoint) / "adapter_config.json")) {
    lora_dir = o.checkpoint;
    base = io::read_lora_folder(o.checkpoint).base_model;
    if (!fs::exists(fs::path(base) / "config.json"))
      fail((fs::path(o.checkpoint) / "adapter_config.json").string(), "base_model_name_or_path",
           "'" + base + "' is not a model folder here; pass the base as --checkpoint and this folder as --lora");
  }
  if (!lora_dir.empty() && !o.merge_lora)
    fail("--lora", lora_dir,
         "a Hugging Face model folder holds plain weights: add --merge-lora to fold the adapters in");
  if (io::same_file(o.out, base)) fail("--out", o.out, "is the source folder");
  if (!o.overwrite)
    io::require_new_folder(o.out, "--out",
                           "--overwrite writes there, replacing its old weights once the new ones are written");

  // Tensor by tensor, merged in float32 and cast, each shard written before the next is made: the
  // 8.2 B model (33 GB in float32) exports on a machine that holds one shard.
  const io::MergedWeights merged(base, lora_dir);
  std::vector<io::TensorSpec> specs;
  for (const auto& [name, shape] : merged.tensors()) specs.push_back({name, shape, dtype});
  const auto make = [&](const io::TensorSpec& spec) { return merged.float32(spec.name).to(dtype); };

  // The source's own config.json (every field the authors' code reads), with the new dtype.
  const auto config_path = (fs::path(base) / "config.json").string();
  nlohmann::json config = io::read_json_file(config_path);
  config["torch_dtype"] = o.dtype;
  train::write_model_folder(
      o.out,
      [&](const std::string& dir) { io::save_weights(dir, specs, make, io::WeightFormat::Safetensors, shard_bytes); },
      config, train::read_model_side_files(base));
  log::info("exported ", base, lora_dir.empty() ? "" : " + " + lora_dir + " (merged)", " to ", o.out, " as ", o.dtype);
  return 0;
}

}  // namespace

Command add_export(CLI::App& app) {
  auto o = std::make_shared<ExportOptions>();
  auto* cmd =
      app.add_subcommand("export", "Write a model (optionally with LoRA merged) in the authors' Hugging Face layout");
  cmd->add_option("--checkpoint", o->checkpoint, "Model folder, or a LoRA training output (its base is read from it)")
      ->required();
  cmd->add_option("--lora", o->lora, "LoRA folder to apply to --checkpoint (needs --merge-lora)");
  cmd->add_flag("--merge-lora", o->merge_lora, "Fold the LoRA adapters into the weights (W += B·A·alpha/r)");
  cmd->add_option("--out", o->out, "Output folder")->required();
  cmd->add_flag("--overwrite", o->overwrite, "Write into --out even if it holds files (its old weights are replaced)");
  cmd->add_option("--dtype", o->dtype, "bfloat16 | float16 | float32")->capture_default_str();
  cmd->add_option("--max-shard-size", o->max_shard_size, "Largest weights file, e.g. 5GB, 500MB")
      ->capture_default_str();
  return {cmd, [o] { return run_export(*o); }};
}

}  // namespace qalign::tools
