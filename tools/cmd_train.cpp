// qalign train --config FILE [key=value ...] [--key value ...]: the authors' fine-tuning recipe
// (configs/*.yaml) on one process; trailing arguments override the file's options.
#include <memory>
#include <string>
#include <vector>

#include "qalign/config/overrides.h"
#include "qalign/config/train_config.h"
#include "tools/commands.h"
#include "train/trainer.h"

namespace qalign::tools {

Command add_train(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "Fine-tune a model from a YAML recipe (configs/*.yaml)");
  auto config_path = std::make_shared<std::string>();
  auto dump = std::make_shared<std::string>();
  cmd->add_option("--config", *config_path, "Training recipe (YAML)")->required();
  cmd->add_option("--dump-first-step", *dump,
                  "Write the first step's batch, loss and gradients to this safetensors file (parity checks)");
  cmd->allow_extras();
  cmd->footer(
      "Overrides: key=value, --key=value or --key value, with the recipe's option names, e.g.\n"
      "  qalign train --config configs/l1_koniq.yaml output_dir=runs/x --max_steps 100");
  return {cmd, [cmd, config_path, dump]() {
            const auto overrides = config::overrides_from_args(cmd->remaining());
            train::TrainerOptions options;
            options.dump_first_step = *dump;
            train::Trainer trainer(config::load_train_config(*config_path, overrides), options);
            trainer.train();
            return trainer.stopped_by() ? 128 + trainer.stopped_by() : 0;  // not finished: a scheduler must see it
          }};
}

}  // namespace qalign::tools
