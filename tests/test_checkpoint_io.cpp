// Checkpoint IO: the fixture's three forms agree bitwise; write -> read round trips; sharding;
// the memory a bf16 model folder takes to load.
#include <gtest/gtest.h>
#include <malloc.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "qalign/base/atomic_file.h"
#include "qalign/io/checkpoint.h"
#include "qalign/io/safetensors.h"
#include "qalign/io/torch_bin.h"
#include "qalign/io/weights.h"
#include "qalign/model/presets.h"
#include "tests/support/fixtures.h"
#include "train/device.h"

namespace fs = std::filesystem;
using namespace qalign;

namespace {

bool bitwise_equal(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  auto ca = a.contiguous(), cb = b.contiguous();
  // Empty tensors have no storage (null data pointers, which memcmp must not be given).
  return ca.numel() == 0 || std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.numel() * ca.element_size()) == 0;
}

void expect_same(const io::StateDict& a, const io::StateDict& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) {
    ASSERT_TRUE(b.count(name)) << name;
    EXPECT_TRUE(bitwise_equal(t, b.at(name))) << name;
  }
}

fs::path temp_dir(const std::string& name) {
  static const test::ScratchDir root("qalign-checkpoint-io");  // removed at exit
  fs::path d = fs::path(root.path()) / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// One tensor of every dtype HF uses, with values that exercise every byte.
io::StateDict every_dtype() {
  io::StateDict sd;
  auto base = torch::arange(-37, 83, torch::kFloat64).reshape({4, 30}) * 1.37;
  sd["f64"] = base;
  sd["f32"] = base.to(torch::kFloat32);
  sd["f16"] = base.to(torch::kFloat16);
  sd["bf16"] = base.to(torch::kBFloat16);
  sd["i64"] = (base * 1e12).to(torch::kInt64);
  sd["i32"] = (base * 1e6).to(torch::kInt32);
  sd["i16"] = (base * 100).to(torch::kInt16);
  sd["i8"] = base.to(torch::kInt8);
  sd["u8"] = (base + 50).to(torch::kUInt8);
  sd["bool"] = base > 0;
  sd["scalar"] = torch::tensor(3.5f);
  sd["empty"] = torch::empty({0, 3});
  return sd;
}

}  // namespace

TEST(CheckpointIO, FixtureSafetensorsAndBinAreBitwiseEqual) {
  const auto st = io::load_weights(test::fixture("qalign-tiny/model/model.safetensors"));
  const auto bin = io::load_weights(test::fixture("qalign-tiny/model/pytorch_model.bin"));
  EXPECT_EQ(st.size(), 112u);  // golden.json state_dict inventory
  expect_same(st, bin);
}

TEST(CheckpointIO, ShardedFixtureEqualsSingleFile) {
  const auto st = io::load_weights(test::fixture("qalign-tiny/model"));
  const auto sharded = io::load_weights(test::fixture("qalign-tiny/model-sharded"));
  expect_same(st, sharded);
  EXPECT_EQ(io::resolve_weights(test::fixture("qalign-tiny/model")),
            test::fixture("qalign-tiny/model/model.safetensors"));
}

TEST(CheckpointIO, SafetensorsWriterMatchesReferenceLayout) {
  // Rewriting the fixture must give the reference writer's bytes exactly.
  const auto path = test::fixture("qalign-tiny/model/model.safetensors");
  const auto sd = io::load_weights(path);
  const auto out = temp_dir("layout") / "model.safetensors";
  io::save_safetensors(out.string(), sd);
  EXPECT_EQ(io::read_file(out.string()), io::read_file(path));
}

TEST(CheckpointIO, SafetensorsRoundTripEveryDtype) {
  const auto sd = every_dtype();
  const auto out = temp_dir("st_dtypes") / "all.safetensors";
  io::save_safetensors(out.string(), sd, {{"format", "pt"}, {"note", "round \"trip\""}});
  auto f = io::SafetensorsFile::open(out.string());
  EXPECT_EQ(f->metadata().at("note"), "round \"trip\"");
  expect_same(sd, f->load_all());
}

TEST(CheckpointIO, TorchBinRoundTripEveryDtype) {
  const auto sd = every_dtype();
  const auto out = temp_dir("bin_dtypes") / "pytorch_model.bin";
  io::save_torch_bin(out.string(), sd);
  expect_same(sd, io::load_torch_bin(out.string()));
}

TEST(CheckpointIO, ZeroCopyTensorsAreCopyOnWrite) {
  const auto path = test::fixture("qalign-tiny/model/model.safetensors");
  const std::string before = io::read_file(path);
  auto t = io::SafetensorsFile::open(path)->get("model.norm.weight");
  t.add_(1.0);  // must not reach the file
  EXPECT_EQ(io::read_file(path), before);
}

class Sharding : public ::testing::TestWithParam<io::WeightFormat> {};

TEST_P(Sharding, IndexCoversEveryTensorOnceAndReloadsBitwise) {
  const auto sd = io::load_weights(test::fixture("qalign-tiny/model"));
  const bool st = GetParam() == io::WeightFormat::Safetensors;
  const auto dir = temp_dir(st ? "shard_st" : "shard_bin");
  io::save_weights(dir.string(), sd, GetParam(), 200 * 1024);
  const auto index_path = dir / (st ? "model.safetensors.index.json" : "pytorch_model.bin.index.json");
  ASSERT_TRUE(fs::exists(index_path));
  const auto index = nlohmann::json::parse(io::read_file(index_path.string()));
  std::set<std::string> files;
  size_t listed = 0;
  for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
    ++listed;
    files.insert(it.value().get<std::string>());
  }
  EXPECT_EQ(listed, sd.size());
  EXPECT_GE(files.size(), 4u);
  // Each shard holds exactly the names the index gives it.
  size_t held = 0;
  for (const auto& f : files) held += io::load_weights((dir / f).string()).size();
  EXPECT_EQ(held, sd.size());
  uint64_t total = 0;
  for (const auto& [n, t] : sd) total += t.numel() * t.element_size();
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), total);
  expect_same(sd, io::load_weights(dir.string()));
}

INSTANTIATE_TEST_SUITE_P(Formats, Sharding,
                         ::testing::Values(io::WeightFormat::Safetensors, io::WeightFormat::TorchBin));

TEST(CheckpointIO, InspectAgreesOnTheThreeForms) {
  std::string a, b, c;
  const std::string q = test::qalign_binary() + " inspect --json ";
  ASSERT_EQ(test::run_command(q + test::fixture("qalign-tiny/model"), &a), 0) << a;
  ASSERT_EQ(test::run_command(q + test::fixture("qalign-tiny/model/pytorch_model.bin"), &b), 0) << b;
  ASSERT_EQ(test::run_command(q + test::fixture("qalign-tiny/model-sharded"), &c), 0) << c;
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, c);
  const auto j = nlohmann::json::parse(a);
  EXPECT_EQ(j["tensors"].size(), 112u);
  EXPECT_EQ(j["num_bytes"].get<uint64_t>(), 958976u);  // total_size in the fixture's index
  EXPECT_EQ(j["num_parameters"].get<uint64_t>(), 958976u / 4);
}

// Loading a bf16 model folder for training (the trainer's io::load_pretrained): weights go
// piece by piece straight into bf16 parameters, so the resident memory the load adds stays near
// the weights' size: no float32 model, no second copy of the file in memory.
TEST(LoadPretrained, Bf16FolderAddsAboutItsOwnSizeOfMemory) {
  test::ScratchDir dir("qalign_loadmem");
  {
    model::Owl2ForCausalLM m(model::preset_config("small"), torch::TensorOptions().dtype(torch::kBFloat16));
    io::save_weights(dir.path(), io::state_dict(*m), io::WeightFormat::Safetensors);
    io::write_file_atomic(dir.file("config.json"), m->config.to_json().dump());
  }
  malloc_trim(0);
  const double file = static_cast<double>(fs::file_size(dir.file("model.safetensors")));
  const int64_t before = train::resident_bytes();
  ASSERT_TRUE(train::reset_peak_resident()) << "/proc/self/clear_refs refused: the peak cannot be measured here";
  const auto m = io::load_pretrained(dir.path(), torch::kBFloat16);
  const double added = static_cast<double>(train::peak_resident_bytes() - before);
  std::cout << "weights " << file / (1 << 20) << " MiB; the load added " << added / (1 << 20) << " MiB at peak ("
            << added / file << "x)\n";
  EXPECT_LE(added, 1.3 * file);
  EXPECT_GE(added, 0.9 * file);  // the parameters themselves are resident
  const auto saved = io::SafetensorsFile::open(dir.file("model.safetensors"));
  const auto loaded = io::state_dict(*m);
  for (const auto& t : saved->tensors()) EXPECT_TRUE(bitwise_equal(loaded.at(t.name), saved->get(t.name))) << t.name;
}
