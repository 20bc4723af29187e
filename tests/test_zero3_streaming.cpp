// ZeRO-3 that never holds the whole model on a rank: each rank reads only its own chunks of the
// checkpoint, saving gathers one unit at a time and evaluation runs unit by unit. Two Gloo ranks
// on a tiny model made deep (48 decoder layers) so that, as at full size, one unit is a small part
// of the model: each rank's peak of CPU tensor bytes (the trainer's per-phase report) on load, save
// and evaluation stays within 0.6 x the whole model's bf16 bytes (plus evaluation's activations),
// where one process, which holds the whole model, exceeds it; what is saved of the frozen weights
// is bitwise what was loaded, as one process saves it; a LoRA run saves its folder at stage 3 and
// resumes on one process, its saves gathering only the trained tensors.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "qalign/io/checkpoint.h"
#include "qalign/io/safetensors.h"
#include "tests/support/fixtures.h"

using namespace qalign;
namespace fs = std::filesystem;

namespace {

std::string in_repo(const std::string& cmd) {
  return "cd '" + test::source_dir() + "' && export OMP_NUM_THREADS=1 MKL_ENABLE_INSTRUCTIONS=AVX2 && " + cmd;
}

std::string train_cmd(const std::string& args) {
  return "'" + test::qalign_binary() + "' train --config " + test::kTinyRecipe +
         " group_by_modality_length=false dataloader_num_workers=1 " + args;
}

std::string launch_cmd(int nproc, const std::string& args) {
  return "'" + test::qalign_binary() + "' launch --nproc-per-node " + std::to_string(nproc) + " --master-port " +
         std::to_string(test::free_port()) + " -- " + train_cmd(args);
}

int run(const std::string& cmd, std::string* out) {
  const int rc = test::run_command(in_repo(cmd), out);
  if (rc != 0) std::cerr << *out;
  return rc;
}

// The tiny fixture model with 48 decoder layers, in bfloat16, in shards of at most 1 MB.
std::string deep_tiny_model(const test::ScratchDir& dir) {
  auto config = nlohmann::json::parse(std::ifstream(test::source_dir() + "/" + test::kTinyModel + "/config.json"));
  config["num_hidden_layers"] = 48;
  const auto config_path = dir.file("deep_config.json");
  std::ofstream(config_path) << config.dump(2);
  const auto model = dir.file("deep");
  std::string out;
  EXPECT_EQ(run("'" + test::qalign_binary() + "' init --config " + config_path + " --tokenizer " + test::kTinyModel +
                    " --out " + model + " --dtype bfloat16 --max-shard-size 1MB --seed 3",
                &out),
            0);
  EXPECT_TRUE(fs::exists(model + "/model.safetensors.index.json")) << out;
  return model;
}

// Every tensor of a model folder (shards and index, or one file).
io::StateDict weights(const std::string& dir) { return io::load_weights(dir); }

int64_t bytes(const io::StateDict& sd) {
  int64_t total = 0;
  for (const auto& [name, t] : sd) total += t.numel() * static_cast<int64_t>(t.element_size());
  return total;
}

// The weights the runs freeze (all but the abstractor, whose training the tests of
// tests/test_distributed.cpp compare) bitwise equal.
void expect_frozen_equal(const io::StateDict& a, const io::StateDict& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : b) {
    ASSERT_TRUE(a.count(name)) << name;
    if (name.rfind("model.visual_abstractor.", 0) != 0) EXPECT_TRUE(torch::equal(a.at(name), t)) << name;
  }
}

// One phase report of the trainer: "rank R: <phase>: P B of CPU tensors at peak, A B above its
// start[; parameter shard S B]".
struct Phase {
  int rank = 0;
  std::string phase;
  int64_t peak = 0, above = 0, shard = 0;
};

std::vector<Phase> phases(const std::string& log) {
  std::vector<Phase> out;
  const std::regex line(
      R"(rank (\d+): ([^:\n]+): (\d+) B of CPU tensors at peak, (\d+) B above its start(; parameter shard (\d+) B)?)");
  for (std::sregex_iterator it(log.begin(), log.end(), line), end; it != end; ++it) {
    const auto& m = *it;
    out.push_back({std::stoi(m[1]), m[2], std::stoll(m[3]), std::stoll(m[4]), m[6].matched ? std::stoll(m[6]) : 0});
  }
  return out;
}

std::vector<Phase> named(const std::vector<Phase>& all, const std::string& prefix) {
  std::vector<Phase> out;
  for (const auto& p : all)
    if (p.phase.rfind(prefix, 0) == 0) out.push_back(p);
  return out;
}

}  // namespace

// Only the abstractor trains: the rest of what the two-rank stage-3 run and the one-process run
// save must be exactly the model they started from.
TEST(Zero3Streaming, RanksHoldTheirShareOnLoadSaveAndEvaluationAndSaveTheModelBitwise) {
  test::ScratchDir dir("qalign_zero3_streaming");
  const auto model = deep_tiny_model(dir);
  const auto set = dir.file("fixture_set.json");
  std::ofstream(set) << R"([{"image": "img_wide.png", "gt_score": 3.5}, {"image": "img_tall.jpg", "gt_score": 1.25},
    {"image": "img_big.png", "gt_score": 4.0}, {"image": "video.avi", "gt_score": 2.0}])";
  const std::string args =
      "model_name_or_path=" + model +
      " bf16=true tune_language_model=false freeze_vision_model=true max_steps=2 save_steps=2 eval_steps=2 "
      "gradient_accumulation_steps=1 per_device_eval_batch_size=2 eval_data_paths=" +
      set + " ";
  std::string two_log, one_log;
  const auto two = dir.file("two"), one = dir.file("one");
  ASSERT_EQ(run(launch_cmd(2, args + "zero_stage=3 per_device_train_batch_size=1 output_dir=" + two), &two_log), 0);
  ASSERT_EQ(run(train_cmd(args + "per_device_train_batch_size=2 output_dir=" + one), &one_log), 0);

  const auto loaded = weights(model);
  const double whole = static_cast<double>(bytes(loaded)), bound = 0.6 * whole;
  for (const auto& out : {two, two + "/checkpoint-2", one, one + "/checkpoint-2"}) {
    SCOPED_TRACE(out);
    expect_frozen_equal(weights(out), loaded);
  }

  // One process holds the whole model from loading on: the bound is one it cannot keep.
  const auto baseline = named(phases(one_log), "loading");
  ASSERT_EQ(baseline.size(), 1u) << one_log;
  EXPECT_GE(static_cast<double>(baseline[0].peak), whole);
  // Evaluation's activations: what the one process's evaluation (every item) adds to the model.
  const auto one_eval = named(phases(one_log), "evaluation");
  ASSERT_EQ(one_eval.size(), 1u) << one_log;
  const double activations = static_cast<double>(one_eval[0].above);

  const auto all = phases(two_log);
  const auto loading = named(all, "loading"), saving = named(all, "saving"), evaluation = named(all, "evaluation");
  ASSERT_EQ(loading.size(), 2u) << two_log;
  ASSERT_EQ(saving.size(), 2u * 3) << two_log;  // checkpoint-2, best, the final model
  ASSERT_EQ(evaluation.size(), 2u) << two_log;
  for (const auto& p : all) {
    SCOPED_TRACE(p.phase + " on rank " + std::to_string(p.rank));
    EXPECT_NEAR(static_cast<double>(p.shard), whole / 2, 0.05 * whole);
    std::cout << "rank " << p.rank << " " << p.phase << ": peak " << p.peak << " B, above its start " << p.above
              << " B, shard " << p.shard << " B; whole model " << whole << " B\n";
  }
  for (const auto& p : loading) EXPECT_LE(static_cast<double>(p.peak), bound) << p.rank;
  // Saving and evaluation: the shard plus what the phase added to it (the units gathered).
  for (const auto& p : saving) EXPECT_LE(static_cast<double>(p.shard + p.above), bound) << p.phase << p.rank;
  for (const auto& p : evaluation) EXPECT_LE(static_cast<double>(p.shard + p.above), bound + activations) << p.rank;
}

// A LoRA run at stage 3 on two ranks writes its adapter folders, gathered unit by unit, and one
// process resumes its checkpoint to the same end as the two ranks (up to the rounding of another
// batch split, as tests/test_distributed.cpp's resharding allows).
TEST(Zero3Streaming, LoraFoldersSavedAtStageThreeResumeOnOneProcess) {
  test::ScratchDir dir("qalign_zero3_lora");
  const std::string args =
      "max_steps=4 save_steps=2 gradient_accumulation_steps=1 lora_enable=true lora_r=4 lora_alpha=8 lora_dropout=0 ";
  const auto two = dir.file("two"), resumed = dir.file("resumed");
  std::string out;
  ASSERT_EQ(run(launch_cmd(2, args + "zero_stage=3 per_device_train_batch_size=1 output_dir=" + two), &out), 0);
  for (const auto& folder : {two, two + "/checkpoint-2"}) {
    EXPECT_TRUE(fs::exists(folder + "/adapter_model.safetensors")) << folder;
    EXPECT_FALSE(fs::exists(folder + "/model.safetensors")) << folder;
  }
  // A LoRA save gathers the trained tensors alone, never a unit's frozen part: each rank holds at
  // most twice their bytes above its start (gathering the adapters' units whole held a frozen
  // decoder layer beside copies of every trained tensor: 3.6 times them here).
  const auto trained = static_cast<int64_t>(fs::file_size(two + "/adapter_model.safetensors") +
                                            fs::file_size(two + "/non_lora_trainables.bin"));
  const auto saves = named(phases(out), "saving");
  ASSERT_FALSE(saves.empty()) << out;
  for (const auto& p : saves) EXPECT_LE(p.above, 2 * trained) << p.phase << " on rank " << p.rank;
  ASSERT_EQ(run(train_cmd(args + "per_device_train_batch_size=2 output_dir=" + resumed +
                          " resume_from_checkpoint=" + two + "/checkpoint-2"),
                &out),
            0);
  EXPECT_NE(out.find("resharded"), std::string::npos) << out;
  const auto adapters = [](const std::string& d) {
    return io::SafetensorsFile::open(d + "/adapter_model.safetensors")->load_all();
  };
  const auto a = adapters(resumed), b = adapters(two);
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : b) {
    const auto x = a.at(name).to(torch::kFloat64), y = t.to(torch::kFloat64);
    EXPECT_LE((x - y).abs().max().item<double>(), 1e-5 * std::max(y.abs().max().item<double>(), 1e-12)) << name;
  }
}
