#include "train/level_position.h"

#include <algorithm>

#include "qalign/base/error.h"

namespace qalign::train {

std::vector<int64_t> level_word_positions(const torch::Tensor& labels, const std::vector<int64_t>& level_ids,
                                          const std::vector<std::string>& ids, const std::string& field) {
  const int64_t B = labels.size(0), L = labels.size(1);
  const auto labels_cpu = labels.to(torch::kCPU).contiguous();
  const auto* lab = labels_cpu.data_ptr<int64_t>();
  std::vector<int64_t> positions;
  for (int64_t b = 0; b < B; ++b) {
    int64_t found = -1;
    for (int64_t t = 1; t < L && found < 0; ++t)
      if (std::find(level_ids.begin(), level_ids.end(), lab[b * L + t]) != level_ids.end()) found = t - 1;
    if (found < 0) fail(ids[static_cast<size_t>(b)], field, "its answer has no level word to read the hidden state at");
    positions.push_back(b * L + found);
  }
  return positions;
}

}  // namespace qalign::train
