#pragma once
// The tiny fixture's goldens (tests/fixtures/qalign-tiny: golden.safetensors + golden.json),
// opened once per test process.
#include <torch/torch.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "qalign/io/safetensors.h"

namespace qalign::test {

struct TinyGolden {
  std::shared_ptr<io::SafetensorsFile> tensors;
  nlohmann::json json;
  torch::Tensor get(const std::string& name) const { return tensors->get(name); }
};

const TinyGolden& tiny_golden();

}  // namespace qalign::test
