#include "tools/media_options.h"

namespace qalign::tools {

void add_media_budget_options(CLI::App* cmd, MediaBudget& budget) {
  cmd->add_option("--max-image-file-mb", budget.max_file_mb,
                  "Largest picture file read, in MB (checked before reading; max_image_file_mb in training)")
      ->check(CLI::Range(int64_t{1}, kMaxMediaBudgetMb))
      ->capture_default_str();
  cmd->add_option("--max-image-decoded-mb", budget.max_decoded_mb,
                  "Most memory one picture's decoding may take, in MB, estimated from its header before "
                  "decoding (max_image_decoded_mb in training)")
      ->check(CLI::Range(int64_t{1}, kMaxMediaBudgetMb))
      ->capture_default_str();
}

}  // namespace qalign::tools
