#pragma once
// The bytes of a tensor's elements (none for an undefined one): the unit of the memory accounting.
#include <torch/torch.h>

#include <vector>

namespace qalign::train {

inline int64_t bytes_of(const torch::Tensor& t) {
  return t.defined() ? t.numel() * static_cast<int64_t>(t.element_size()) : 0;
}
inline int64_t bytes_of(const std::vector<torch::Tensor>& ts) {
  int64_t total = 0;
  for (const auto& t : ts) total += bytes_of(t);
  return total;
}

}  // namespace qalign::train
