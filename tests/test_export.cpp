// `qalign export`: the authors' Hugging Face layout, tensors that reload bit for bit in every
// dtype and shard size, and LoRA merging against the authors' merged weights
// (tests/fixtures/qalign-lora/MANIFEST.md: merged weights ≤ 1e-6).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "qalign/io/checkpoint.h"
#include "qalign/io/weights.h"
#include "tests/support/fixtures.h"
#include "tests/support/goldens.h"

using namespace qalign;
namespace fs = std::filesystem;

namespace {

const std::string kBaseModel = "qalign-tiny/model";

int export_model(const std::string& args, std::string* out) {
  const int rc = test::run_command("'" + test::qalign_binary() + "' export " + args, out);
  return rc;
}

// The base checkpoint as our model holds it (what export writes, before the dtype cast).
io::StateDict base_weights() { return io::state_dict(*io::load_pretrained(test::fixture(kBaseModel))); }

void expect_bitwise(const io::StateDict& got, const io::StateDict& want, torch::Dtype dtype) {
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [name, t] : want) {
    ASSERT_TRUE(got.count(name)) << name;
    EXPECT_EQ(got.at(name).scalar_type(), dtype) << name;
    EXPECT_TRUE(torch::equal(got.at(name), t.to(dtype))) << name;
  }
}

}  // namespace

TEST(Export, Float32FolderReloadsBitwise) {
  test::ScratchDir dir("export_f32");
  std::string out;
  ASSERT_EQ(
      export_model("--checkpoint " + test::fixture(kBaseModel) + " --out " + dir.path() + " --dtype float32", &out), 0)
      << out;
  for (const char* file : {"config.json", "model.safetensors", "tokenizer.model", "tokenizer_config.json",
                           "special_tokens_map.json", "preprocessor_config.json", "generation_config.json"})
    EXPECT_TRUE(fs::exists(dir.file(file))) << file;
  expect_bitwise(io::load_weights(dir.path()), base_weights(), torch::kFloat32);
  // Every field of the source config.json is kept; only the dtype is the export's.
  auto config = test::read_json(dir.file("config.json")),
       source = test::read_json(test::fixture(kBaseModel + "/config.json"));
  EXPECT_EQ(config["torch_dtype"], "float32");
  source["torch_dtype"] = "float32";
  EXPECT_EQ(config, source);
  // And it is a model again.
  auto m = io::load_pretrained(dir.path());
  EXPECT_EQ(model::count_parameters(*m), model::count_parameters(*io::load_pretrained(test::fixture(kBaseModel))));
}

TEST(Export, ShardedBFloat16ReloadsBitwise) {
  test::ScratchDir dir("export_shards");
  std::string out;
  ASSERT_EQ(export_model("--checkpoint " + test::fixture(kBaseModel) + " --out " + dir.path() +
                             " --dtype bfloat16 --max-shard-size 200KB",
                         &out),
            0)
      << out;
  ASSERT_TRUE(fs::exists(dir.file("model.safetensors.index.json")));
  EXPECT_FALSE(fs::exists(dir.file("model.safetensors")));
  const auto index = test::read_json(dir.file("model.safetensors.index.json"));
  std::set<std::string> shards;
  for (const auto& [name, file] : index["weight_map"].items()) shards.insert(file.get<std::string>());
  EXPECT_GT(shards.size(), 1u);
  for (const auto& s : shards)
    EXPECT_LE(fs::file_size(dir.file(s)), 200000u + 100000u) << s;  // one tensor may overflow
  expect_bitwise(io::load_weights(dir.path()), base_weights(), torch::kBFloat16);
  EXPECT_EQ(test::read_json(dir.file("config.json"))["torch_dtype"], "bfloat16");
}

TEST(Export, Float16) {
  test::ScratchDir dir("export_f16");
  std::string out;
  ASSERT_EQ(
      export_model("--checkpoint " + test::fixture(kBaseModel) + " --out " + dir.path() + " --dtype float16", &out), 0)
      << out;
  expect_bitwise(io::load_weights(dir.path()), base_weights(), torch::kFloat16);
}

TEST(Export, MergeLoraGivesTheAuthorsMergedWeights) {
  test::ScratchDir dir("export_merge");
  std::string out;
  ASSERT_EQ(export_model("--checkpoint " + test::fixture(kBaseModel) + " --lora " +
                             test::fixture("qalign-lora/q-align-tiny-lora") + " --merge-lora --dtype float32 --out " +
                             dir.path(),
                         &out),
            0)
      << out;
  const auto got = io::load_weights(dir.path());
  const auto want = io::load_weights(test::fixture("qalign-lora/merged/model.safetensors"));
  ASSERT_EQ(got.size(), want.size());
  double worst = 0;
  for (const auto& [name, t] : want) {
    ASSERT_TRUE(got.count(name)) << name;
    worst = std::max(worst, (got.at(name).to(torch::kFloat64) - t.to(torch::kFloat64)).abs().max().item<double>());
  }
  EXPECT_LE(worst, 1e-6);
  std::cout << "[export] merged weights max diff " << worst << "\n";
}

TEST(Export, Errors) {
  test::ScratchDir dir("export_errors");
  std::string out;
  EXPECT_NE(export_model("--checkpoint " + test::fixture(kBaseModel) + " --lora " +
                             test::fixture("qalign-lora/q-align-tiny-lora") + " --out " + dir.file("x"),
                         &out),
            0);
  EXPECT_NE(out.find("--merge-lora"), std::string::npos) << out;
  EXPECT_NE(
      export_model("--checkpoint " + test::fixture(kBaseModel) + " --out " + dir.file("y") + " --dtype float64", &out),
      0);
  EXPECT_NE(out.find("--dtype"), std::string::npos) << out;
  EXPECT_NE(
      export_model("--checkpoint " + test::fixture(kBaseModel) + " --out " + dir.file("z") + " --max-shard-size lots",
                   &out),
      0);
  EXPECT_NE(out.find("--max-shard-size"), std::string::npos) << out;
}
