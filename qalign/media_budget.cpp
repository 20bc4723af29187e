#include "qalign/media_budget.h"

#include <cmath>

#include "qalign/base/error.h"

namespace qalign {

namespace {

constexpr double kMb = 1024.0 * 1024.0;

std::string mb_text(double bytes) { return std::to_string(static_cast<int64_t>(std::ceil(bytes / kMb))); }

}  // namespace

void check_file_budget(const std::string& path, int64_t file_bytes, const MediaBudget& budget) {
  if (static_cast<double>(file_bytes) <= static_cast<double>(budget.max_file_mb) * kMb) return;
  fail(path, "",
       "image file is " + mb_text(static_cast<double>(file_bytes)) + " MB, over the " +
           std::to_string(budget.max_file_mb) +
           " MB file-size budget for a picture (raise max_image_file_mb, or --max-image-file-mb)");
}

void check_decoded_budget(const std::string& path, const std::string& what, double decoded_bytes,
                          const MediaBudget& budget) {
  // Written to be false for NaN too.
  if (decoded_bytes <= static_cast<double>(budget.max_decoded_mb) * kMb) return;
  fail(path, "",
       "decoding " + what + " needs about " + mb_text(decoded_bytes) + " MB, over the " +
           std::to_string(budget.max_decoded_mb) +
           " MB decoded-bytes budget for a picture (raise max_image_decoded_mb, or --max-image-decoded-mb)");
}

}  // namespace qalign
