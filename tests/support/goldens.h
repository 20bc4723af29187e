#pragma once
// What the tests on the authors' goldens share: the JSON metadata and safetensors of a fixture
// set and pictures as tensors.
#include <torch/torch.h>

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "data/image.h"
#include "qalign/io/safetensors.h"
#include "tests/support/fixtures.h"

namespace qalign::test {

inline nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

// tests/fixtures/<set>/golden.safetensors, opened once per process.
inline const io::SafetensorsFile& golden(const std::string& set) {
  static std::map<std::string, std::shared_ptr<io::SafetensorsFile>> files;
  auto& f = files[set];
  if (!f) f = io::SafetensorsFile::open(fixture(set + "/golden.safetensors"));
  return *f;
}

// [H, W, 3] uint8, a copy.
inline torch::Tensor as_tensor(const data::Image& img) {
  return torch::from_blob(const_cast<uint8_t*>(img.rgb.data()), {img.height, img.width, 3}, torch::kUInt8).clone();
}

inline double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}
// max_abs_diff, failing the test when the shapes differ (broadcasting would hide that).
inline double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  return max_abs_diff(a, b);
}
inline double max_abs(const torch::Tensor& t) { return t.abs().max().item<double>(); }
// Every tensor of a safetensors file, in memory.
inline io::StateDict load_safetensors(const std::string& path) { return io::SafetensorsFile::open(path)->load_all(); }

}  // namespace qalign::test
