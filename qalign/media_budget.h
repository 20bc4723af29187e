#pragma once
// What one picture may cost before it is decoded: a file-size budget (checked from stat, before the
// file is read) and a decoded-bytes budget (checked from the header's size, channels and sample
// depth, before the decoder allocates). The model needs at most 448x448x3 values per picture, so
// the input must not decide how much memory a job takes. MB are 2^20 bytes.
#include <cstdint>
#include <string>

namespace qalign {

// Defaults: every picture under PIL's pixel limit fits the decoded budget as 8-bit RGB (the
// decoder's copy and ours, 6 bytes a pixel: 1024 MB), and its file the file budget.
inline constexpr int64_t kDefaultMaxImageFileMb = 512;
inline constexpr int64_t kDefaultMaxImageDecodedMb = 1024;
// The largest budget accepted (1 TiB): MB * 2^20 stays far inside int64.
inline constexpr int64_t kMaxMediaBudgetMb = int64_t{1} << 20;

struct MediaBudget {
  int64_t max_file_mb = kDefaultMaxImageFileMb;        // max_image_file_mb, --max-image-file-mb
  int64_t max_decoded_mb = kDefaultMaxImageDecodedMb;  // max_image_decoded_mb, --max-image-decoded-mb
};

// Throws qalign::Error naming `path`, the size, the budget and the key that raises it when the
// file is over max_file_mb.
void check_file_budget(const std::string& path, int64_t file_bytes, const MediaBudget& budget);

// Throws qalign::Error naming `path`, `what` is decoded ("4000x3000 pixels"), the estimate and the
// key that raises it when `decoded_bytes` (an estimate, a double: a hostile header's product
// overflows int64) is over max_decoded_mb.
void check_decoded_budget(const std::string& path, const std::string& what, double decoded_bytes,
                          const MediaBudget& budget);

}  // namespace qalign
