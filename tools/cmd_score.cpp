// qalign score: images and videos -> level probabilities and scores. The options; the job itself
// (resumable --out, ranks of a launch, the keep list) is qalign/scoring/job.h.
#include <memory>

#include "data/timed_decode.h"
#include "qalign/scoring/job.h"
#include "tools/commands.h"
#include "tools/media_options.h"
#include "tools/quantize_flags.h"

namespace qalign::tools {

Command add_score(CLI::App& app) {
  auto o = std::make_shared<scoring::ScoreJob>();
  auto budget = std::make_shared<MediaBudget>();
  auto* cmd = app.add_subcommand("score", "Score images and videos (quality or aesthetics, 1-5 and 0-1)");
  cmd->add_option("--model", o->model, "Model folder (config.json + weights)")->required();
  cmd->add_option("--lora", o->lora, "LoRA folder (PEFT or the authors' layout) applied to --model and merged");
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer folder (default: the model folder)");
  cmd->add_option("--task", o->task, "quality | aesthetics")->capture_default_str();
  cmd->add_option("--prompt", o->prompt, "scorer (the released scorer's prompt) | eval (the evaluation scripts')")
      ->capture_default_str();
  cmd->add_option("--batch-size", o->batch_size, "Items per forward pass")->capture_default_str();
  cmd->add_option("--workers", o->workers, "Threads decoding and pre-processing ahead of the model (0: none)")
      ->capture_default_str();
  cmd->add_option("--dtype", o->dtype, "float32 | bfloat16")->capture_default_str();
  cmd->add_option("--device", o->device, "cpu | cuda (each process of a launch takes its local GPU)")
      ->capture_default_str();
  add_quantize_flags(cmd, o->quantize);
  cmd->add_flag("--json", o->json, "One JSON object per line on stdout");
  cmd->add_option("--out", o->out,
                  "Write the rows to FILE (.jsonl or .csv), resumably: rerunning the same command finishes the job")
      ->type_name("FILE");
  cmd->add_flag("--overwrite", o->overwrite, "With --out: start over, discarding earlier rows");
  cmd->add_option("--threshold", o->threshold, "Keep the inputs scoring at least T (1-5 scale)")->type_name("T");
  cmd->add_option("--keep-list", o->keep_list, "Where the kept inputs go, one per line (default: stdout)")
      ->type_name("FILE");
  cmd->add_option("--timeout", o->timeout_s, "Seconds a process waits for the others at the start and the end")
      ->capture_default_str();
  add_media_budget_options(cmd, *budget);
  cmd->add_option("inputs", o->inputs, "Image or video files, folders (recursed), @list.txt (one path per line)")
      ->required();
  return {cmd, [o, budget] {
            return scoring::score(*o, scoring::input_stream(o->inputs), data::budgeted_decoder(*budget),
                                  scoring::launch_from_environment());
          }};
}

}  // namespace qalign::tools
