// qalign eval: the options; the evaluation itself is qalign/scoring/eval.h.
#include <memory>

#include "data/timed_decode.h"
#include "qalign/scoring/eval.h"
#include "tools/commands.h"
#include "tools/media_options.h"
#include "tools/quantize_flags.h"

namespace qalign::tools {

Command add_eval(CLI::App& app) {
  auto o = std::make_shared<scoring::EvalJob>();
  auto budget = std::make_shared<MediaBudget>();
  auto* cmd = app.add_subcommand("eval", "Evaluate a model on test files: SRCC, PLCC, KRCC, logistic-fitted PLCC/RMSE");
  cmd->add_option("--model", o->model, "Model folder (config.json + weights)")->required();
  cmd->add_option("--lora", o->lora, "LoRA folder (PEFT or the authors' layout) applied to --model and merged");
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer folder (default: the model folder)");
  cmd->add_option("--data", o->data, "Test JSON files (comma-separated or repeated); each is one dataset")
      ->required()
      ->delimiter(',');
  cmd->add_option("--image-folder", o->image_folder, "Folder the files' image paths are relative to");
  cmd->add_option("--task", o->task, "quality | aesthetics")->capture_default_str();
  cmd->add_option("--prompt", o->prompt, "eval (the evaluation scripts') | scorer (the released scorer's)")
      ->capture_default_str();
  cmd->add_option("--batch-size", o->batch_size, "Items per forward pass")->capture_default_str();
  cmd->add_option("--readout", o->readout,
                  "levels (Q-Align) | number (decode a numeric answer) | regression (the score_head); the ablation's")
      ->capture_default_str();
  cmd->add_flag("--lower-is-better", o->lower_is_better,
                "Ground truth is DMOS (LIVE, CSIQ): report correlation magnitudes");
  cmd->add_option("--out", o->out, "Output folder (results.json, results.md, predictions.jsonl/.csv, job.json)")
      ->capture_default_str();
  cmd->add_flag("--overwrite", o->overwrite,
                "Start --out afresh when it holds another job's evaluation (deletes only the files eval wrote)");
  cmd->add_option("--dtype", o->dtype, "float32 | bfloat16")->capture_default_str();
  cmd->add_option("--device", o->device, "cpu | cuda")->capture_default_str();
  add_media_budget_options(cmd, *budget);
  add_quantize_flags(cmd, o->quantize);
  return {cmd, [o, budget] { return scoring::evaluate(*o, data::budgeted_pixel_loader(*budget)); }};
}

}  // namespace qalign::tools
