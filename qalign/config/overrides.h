#pragma once
// Command-line overrides of a YAML config, nanoGPT/HF style: the trailing arguments of a command
// become "key=value" strings that apply_override (train_config.h) types by the option.
#include <string>
#include <vector>

namespace qalign::config {

// Accepts "key=value", "--key=value" and "--key value" (HF's spelling, e.g. `--bf16 True`);
// dashes inside a key become underscores. Anything else is an error naming the argument.
std::vector<std::string> overrides_from_args(const std::vector<std::string>& args);

}  // namespace qalign::config
