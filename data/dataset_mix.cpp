#include "data/dataset_mix.h"

#include <cmath>
#include <cstdlib>
#include <numeric>

#include "data/dataset_random.h"
#include "qalign/base/error.h"

namespace qalign::data {

DatasetSource parse_dataset_source(const std::string& spec) {
  const size_t colon = spec.rfind(':');
  if (colon == std::string::npos || colon == 0) return {spec, 1.0};
  const std::string tail = spec.substr(colon + 1);
  char* end = nullptr;
  const double w = std::strtod(tail.c_str(), &end);
  if (tail.empty() || *end != '\0') return {spec, 1.0};
  if (!std::isfinite(w) || w < 0) fail(spec, "weight", "\"" + tail + "\" is not a finite weight ≥ 0");
  return {spec.substr(0, colon), w};
}

std::vector<MixEntry> mix_datasets(const std::vector<size_t>& sizes, const std::vector<double>& weights,
                                   uint64_t seed) {
  if (sizes.size() != weights.size()) fail("dataset mix", "weights", "one weight per dataset is needed");
  SplitMix64 rng(seed);
  std::vector<MixEntry> out;
  for (size_t d = 0; d < sizes.size(); ++d) {
    if (!std::isfinite(weights[d]) || weights[d] < 0)
      fail("dataset mix", "weights[" + std::to_string(d) + "]", "not a finite weight ≥ 0");
    const size_t n = sizes[d];
    if (n == 0) continue;
    const auto count = static_cast<size_t>(std::llround(weights[d] * static_cast<double>(n)));
    for (size_t copy = 0; copy < count / n; ++copy)
      for (size_t r = 0; r < n; ++r) out.push_back({d, r});
    // The fraction: the first count % n of a partial Fisher–Yates shuffle.
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), size_t{0});
    for (size_t i = 0; i < count % n; ++i) {
      std::swap(order[i], order[i + rng.below(n - i)]);
      out.push_back({d, order[i]});
    }
  }
  for (size_t i = out.size(); i > 1; --i) std::swap(out[i - 1], out[rng.below(i)]);
  return out;
}

std::vector<TrainingRecord> read_training_mix(const std::vector<DatasetSource>& sources,
                                              const std::string& image_folder, uint64_t seed) {
  std::vector<std::vector<TrainingRecord>> sets;
  std::vector<size_t> sizes;
  std::vector<double> weights;
  for (const auto& s : sources) {
    sets.push_back(read_training_records(s.path, image_folder));
    sizes.push_back(sets.back().size());
    weights.push_back(s.weight);
  }
  std::vector<TrainingRecord> out;
  for (const auto& e : mix_datasets(sizes, weights, seed)) out.push_back(sets[e.dataset][e.record]);
  return out;
}

}  // namespace qalign::data
