#include "train/zero3_buckets.h"

#include <algorithm>

namespace qalign::train {

std::vector<ZeroPieceRun> group_pieces(const std::vector<int64_t>& numel, int64_t bucket_bytes) {
  // From the last parameter, as backward delivers them and as the buckets are cut.
  std::vector<ZeroPieceRun> out;
  for (size_t k = numel.size(); k-- > 0;) {
    if (out.empty() || 4 * (out.back().numel + numel[k]) > bucket_bytes) out.push_back({k, k + 1, 0});
    out.back().first = k;
    out.back().numel += numel[k];
  }
  std::reverse(out.begin(), out.end());
  return out;
}

std::vector<Zero3Bucket> cut_unit_buckets(const std::vector<int64_t>& numel, int64_t world, int64_t bucket_bytes) {
  const int64_t widest = std::max<int64_t>(1, bucket_bytes / 4 / world);
  std::vector<Zero3Bucket> out;
  Zero3Bucket open;
  const auto close = [&] {
    if (open.blocks.empty()) return;
    out.push_back(std::move(open));
    open = Zero3Bucket();
  };
  for (size_t k = numel.size(); k-- > 0;) {
    const int64_t cols = columns(numel[k], world);
    if (cols > widest) {
      close();
      for (int64_t from = 0; from < cols; from += widest) {
        open.blocks.push_back({k, from, std::min(widest, cols - from)});
        open.cols = open.blocks.back().cols;
        close();
      }
      continue;
    }
    if (open.cols + cols > widest) close();
    open.blocks.push_back({k, 0, cols});
    open.cols += cols;
  }
  close();
  return out;
}

}  // namespace qalign::train
