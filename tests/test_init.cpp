// qalign init: a model folder drawn shard by shard, in any dtype, with the values of the
// in-memory initialisation (the model's order, one generator).
#include <gtest/gtest.h>

#include <filesystem>

#include "qalign/io/checkpoint.h"
#include "qalign/io/weights.h"
#include "qalign/model/init_weights.h"
#include "qalign/model/presets.h"
#include "tests/support/fixtures.h"

using namespace qalign;
namespace fs = std::filesystem;

TEST(Init, ShardsHoldTheInMemoryInitialisationInTheDtypeAsked) {
  test::ScratchDir tmp("qalign_init");
  const std::string common = "init --preset tiny --tokenizer " + test::kTinyModel + " --seed 3 --out ";
  const auto one = test::run_qalign_measured(common + tmp.file("one"));
  ASSERT_EQ(one.exit_code, 0) << one.output;
  const auto sharded =
      test::run_qalign_measured(common + tmp.file("sharded") + " --dtype bfloat16 --max-shard-size 100KB");
  ASSERT_EQ(sharded.exit_code, 0) << sharded.output;
  EXPECT_TRUE(test::output_has(sharded, "in bfloat16 drawn with seed 3 in ")) << sharded.output;

  EXPECT_TRUE(fs::exists(tmp.file("one/model.safetensors")));
  ASSERT_TRUE(fs::exists(tmp.file("sharded/model.safetensors.index.json")));
  size_t shards = 0;
  for (const auto& e : fs::directory_iterator(tmp.file("sharded"))) {
    if (e.path().extension() != ".safetensors") continue;
    shards += 1;
    EXPECT_LE(e.file_size(), 100'000u + 64 * 1024) << e.path();  // a shard's tensors, plus its header
  }
  EXPECT_GT(shards, 2u);

  // The reference: the whole model initialised in memory, as before shards existed.
  model::Owl2ForCausalLM reference(model::preset_config("tiny", "--preset"));
  model::initialize_weights(*reference, model::InitRanges{}, 3);
  const auto want = io::state_dict(*reference);
  const auto got_one = io::load_weights(tmp.file("one")), got_sharded = io::load_weights(tmp.file("sharded"));
  ASSERT_EQ(got_one.size(), want.size());
  ASSERT_EQ(got_sharded.size(), want.size());
  for (const auto& [name, t] : want) {
    SCOPED_TRACE(name);
    EXPECT_TRUE(torch::equal(got_one.at(name), t));
    EXPECT_EQ(got_sharded.at(name).scalar_type(), torch::kBFloat16);
    EXPECT_TRUE(torch::equal(got_sharded.at(name), t.to(torch::kBFloat16)));
  }
  const auto config = io::load_pretrained(tmp.file("sharded"), torch::kBFloat16)->config;
  EXPECT_EQ(config.torch_dtype, "bfloat16");
}

// One shard in memory at a time: save_weights asks for a shard's tensors only when it writes that
// shard and drops them before the next (counted here from the tensors' own deleters).
TEST(Init, ShardedWriterHoldsOneShardAtATime) {
  test::ScratchDir tmp("qalign_init_shards");
  std::vector<io::TensorSpec> specs;
  for (int i = 0; i < 40; ++i) specs.push_back({"t" + std::to_string(i), {1000 + 10 * i}, torch::kFloat32});
  int64_t live = 0, peak = 0, made = 0;
  const auto make = [&](const io::TensorSpec& spec) {
    const int64_t bytes = spec.shape[0] * 4;
    auto* data = new float[static_cast<size_t>(spec.shape[0])];
    for (int64_t k = 0; k < spec.shape[0]; ++k) data[k] = static_cast<float>(made + k);
    live += bytes;
    peak = std::max(peak, live);
    made += 1;
    return torch::from_blob(
        data, spec.shape,
        [&live, bytes](void* p) {
          live -= bytes;
          delete[] static_cast<float*>(p);
        },
        torch::kFloat32);
  };
  const uint64_t shard_bytes = 20'000;
  io::save_weights(tmp.path(), specs, make, io::WeightFormat::Safetensors, shard_bytes);
  EXPECT_EQ(made, 40);
  EXPECT_EQ(live, 0);
  EXPECT_LE(peak, static_cast<int64_t>(shard_bytes));
  EXPECT_GT(peak, static_cast<int64_t>(shard_bytes) / 2);  // shards are filled, not one tensor each
  const auto back = io::load_weights(tmp.path());
  ASSERT_EQ(back.size(), specs.size());
  EXPECT_EQ(back.at("t7")[0].item<float>(), 7.0f);
  // A made tensor that does not match its spec is refused, naming it.
  const auto wrong = [](const io::TensorSpec&) { return torch::zeros({3}); };
  EXPECT_NE(
      test::error_of([&] { io::save_weights(tmp.file("w"), specs, wrong, io::WeightFormat::Safetensors); }).find("t0"),
      std::string::npos);
}
