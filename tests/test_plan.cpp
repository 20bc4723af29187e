// The memory planner (train/plan.h): its state terms against what real runs report, and what it
// says about sharding, offload, advice and errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "data/video.h"
#include "qalign/base/error.h"
#include "qalign/config/train_config.h"
#include "qalign/model/presets.h"
#include "tests/support/fixtures.h"
#include "train/plan.h"

using namespace qalign;

namespace {

constexpr int64_t kGiB = int64_t{1} << 30;

std::string recipe() { return test::fixture("train/tiny_recipe.yaml"); }

config::TrainConfig onealign(const std::vector<std::string>& overrides = {}) {
  return config::load_train_config(test::source_dir() + "/configs/onealign.yaml", overrides);
}

// The onealign recipe's samples: one picture and a short question and answer.
constexpr int64_t kOnealignTokens = 160;

using test::error_of;

// --- against real runs ------------------------------------------------------------------------

// Real three-step runs of the small preset in float32 under `qalign launch` on the CPU, every
// weight trained or LoRA adapters: every state term of rank 0's memory report (counted from the
// trainer's tensors) within 1 % of the plan, and the plan's total, activations and buffers
// included, within 10 % of the peak bytes of CPU tensors the run measured (train/cpu_memory.h; on
// the CPU the device and the host are one memory). One CTest entry per layout, so that they run
// side by side.
struct RunLayout {
  int ranks;
  int stage;
  bool offload;
  bool lora = false;
};

std::string layout_name(const RunLayout& l) {
  return std::to_string(l.ranks) + "ranks_stage" + std::to_string(l.stage) + (l.offload ? "_offload" : "") +
         (l.lora ? "_lora" : "");
}

// The layout as test output names it (gtest would print the struct's bytes, padding included).
void PrintTo(const RunLayout& l, std::ostream* os) { *os << layout_name(l); }

class PlanVsRun : public ::testing::TestWithParam<RunLayout> {};

TEST_P(PlanVsRun, StateTermsMatchTheTrainersReport) {
  const auto [ranks, stage, offload, lora] = GetParam();
  test::ScratchDir dir("qalign_plan");
  const std::string model = dir.file("small");
  std::string out;
  const std::string cd = "cd '" + test::source_dir() + "' && export OMP_NUM_THREADS=1 && ";
  ASSERT_EQ(test::run_command(cd + "'" + test::qalign_binary() + "' init --preset small --tokenizer " +
                                  test::fixture("qalign-tiny/model") + " --out " + model,
                              &out),
            0)
      << out;
  const auto model_config = model::ModelConfig::from_json_file(model + "/config.json");
  SCOPED_TRACE(layout_name(GetParam()));
  const std::string run = dir.file(layout_name(GetParam()));
  std::vector<std::string> overrides = {
      "model_name_or_path=" + model, "output_dir=" + run, "max_steps=3", "gradient_accumulation_steps=1",
      "zero_stage=" + std::to_string(stage), "dataloader_num_workers=1", "gradient_checkpointing=false",
      "group_by_modality_length=false", "save_steps=1000", "ddp_bucket_cap_mb=4",
      std::string("offload_optimizer=") + (offload ? "cpu" : "none"),
      // Absolute, so the plan reads the same records as the run whatever the test's folder.
      "data_path=" + test::fixture("train/five_samples.json"), "image_folder=" + test::fixture("qalign-tiny/inputs")};
  if (lora) overrides.insert(overrides.end(), {"lora_enable=true", "lora_r=8", "lora_alpha=16", "lora_dropout=0"});
  std::string args;
  for (const auto& o : overrides) args += " " + o;
  ASSERT_EQ(test::run_command(cd + "'" + test::qalign_binary() + "' launch --nproc-per-node " + std::to_string(ranks) +
                                  " --master-port " + std::to_string(test::free_port()) + " -- '" +
                                  test::qalign_binary() + "' train --config " + recipe() + args,
                              &out),
            0)
      << out;
  std::ifstream metrics(run + "/metrics.jsonl");
  std::string line;
  std::getline(metrics, line);
  const auto report = nlohmann::json::parse(line).at("memory_report").at(0);
  // The peak over three steps: from the second on, AdamW's moments exist during backward too.
  std::string last = line;
  while (std::getline(metrics, line)) last = line;
  const double peak = nlohmann::json::parse(last).at("memory").at(0).at("peak_allocated").get<double>();
  const auto plan =
      train::plan_training(config::load_train_config(recipe(), overrides), model_config, ranks, 80 * kGiB);
  // Offloaded terms are the same tensors in host memory (on the CPU both are the process's).
  const auto& h = plan.host_per_rank;
  auto d = plan.device_per_rank;
  d.gradients += h.gradients;
  d.masters += h.masters;
  d.optimizer += h.optimizer;
  std::cout << "ranks " << ranks << " stage " << stage << ": report " << report.dump() << "; plan parameters "
            << d.parameters << " gradients " << d.gradients << " masters " << d.masters << " optimizer " << d.optimizer
            << " activations " << d.activations << " buffers " << d.buffers << " total " << d.total + h.total
            << "; measured peak " << peak << "\n";
  EXPECT_NEAR(static_cast<double>(d.total + h.total), peak, 0.10 * peak) << "total";
  for (const auto& [name, planned] : {std::pair{"parameters", d.parameters}, std::pair{"gradients", d.gradients},
                                      std::pair{"masters", d.masters}, std::pair{"optimizer", d.optimizer}}) {
    const double reported = report.at(name).get<double>();
    EXPECT_NEAR(static_cast<double>(planned), reported, 0.01 * reported + 1) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, PlanVsRun,
                         ::testing::Values(RunLayout{1, 0, false}, RunLayout{2, 0, false}, RunLayout{2, 1, false},
                                           RunLayout{2, 2, false}, RunLayout{4, 2, false}, RunLayout{2, 2, true},
                                           RunLayout{2, 3, false}, RunLayout{4, 3, false}, RunLayout{2, 3, true},
                                           RunLayout{2, 0, false, true}, RunLayout{2, 2, false, true},
                                           RunLayout{2, 3, false, true}),
                         [](const ::testing::TestParamInfo<RunLayout>& i) { return layout_name(i.param); });

// One process started without a launcher has no process group, so it trains at stage 0 without
// offload whatever the recipe says; it says so, and what it plans is what it reports.
TEST(PlanVsRun, OneProcessWithoutALauncherIsPlannedAndRunAtStageZero) {
  test::ScratchDir dir("qalign_plan_one");
  const std::vector<std::string> overrides = {"output_dir=" + dir.file("run"),
                                              "max_steps=1",
                                              "zero_stage=2",
                                              "offload_optimizer=cpu",
                                              "save_steps=1000",
                                              "data_path=" + test::fixture("train/five_samples.json"),
                                              "image_folder=" + test::fixture("qalign-tiny/inputs")};
  std::string args;
  for (const auto& o : overrides) args += " " + o;
  std::string out;
  ASSERT_EQ(test::run_train(recipe(), args, &out), 0);
  EXPECT_NE(out.find("one process without a launcher trains at ZeRO stage 0 without offload"), std::string::npos)
      << out;
  const auto report = test::read_jsonl(dir.file("run/metrics.jsonl")).at(0).at("memory_report").at(0);
  EXPECT_FALSE(report.contains("state_on_host")) << report.dump();
  auto c = config::load_train_config(recipe(), overrides);
  c.zero_stage = 0;
  c.offload_optimizer = "none";
  const auto plan = train::plan_training(
      c, model::ModelConfig::from_json_file(test::fixture("qalign-tiny/model/config.json")), 1, 80 * kGiB,
      /*tokens=*/0, /*process_group=*/false);
  const auto& d = plan.device_per_rank;
  for (const auto& [name, planned] : {std::pair{"parameters", d.parameters}, std::pair{"gradients", d.gradients},
                                      std::pair{"masters", d.masters}, std::pair{"optimizer", d.optimizer}}) {
    const double reported = report.at(name).get<double>();
    EXPECT_NEAR(static_cast<double>(planned), reported, 0.01 * reported + 1) << name;
  }
}

// --- the plan's own claims ------------------------------------------------------------------

// Stage 3's parameters in the compute dtype: the frozen ones' 1/N (2·P/N bytes in bf16); a trained
// one's values are its float32 masters, unless those are offloaded to the host.
TEST(Plan, ZeroThreeHoldsTwoBytesPerFrozenParameterOverN) {
  const auto m = model::preset_config("owl2-7b");
  for (const bool offload : {false, true})
    for (const int n : {1, 2, 4, 8}) {
      std::vector<std::string> overrides{"zero_stage=3", "lora_enable=true"};
      if (offload) overrides.push_back("offload_optimizer=cpu");
      const auto c = onealign(overrides);
      const auto p = train::plan_training(c, m, n, 80 * kGiB, kOnealignTokens);
      ASSERT_GT(p.trainable_parameters, 0);
      ASSERT_LT(p.trainable_parameters, p.all_parameters / 10);
      const double kept = static_cast<double>(offload ? p.all_parameters : p.all_parameters - p.trainable_parameters);
      const double expected = 2.0 * kept / n;
      EXPECT_NEAR(static_cast<double>(p.device_per_rank.parameters), expected, 1e-4 * expected) << n;
      EXPECT_NEAR(static_cast<double>(p.device_per_rank.optimizer + p.host_per_rank.optimizer),
                  8.0 * static_cast<double>(p.trainable_parameters) / n, 1e-4 * expected);
      EXPECT_GT(p.device_per_rank.buffers, 0);  // two gathered units (zero3_prefetch_blocks 1)
    }
}

// Stage 3 keeps, per rank, a float32 gradient shard (4 bytes), float32 masters (4, the trained
// parameters' only values) and AdamW's two moments (8) of each parameter's 1/N: 16·P/N when
// everything is trained (no bf16 copy beside the masters: 2·P/N less than DeepSpeed's 18).
// The reduce-scatter's float32 buckets are of ddp_bucket_cap_mb, whatever the size of a unit or a
// parameter (embed_tokens alone is 131 M elements), so they add at most a few of those.
TEST(Plan, ZeroThreeStateIsSixteenBytesPerParameterOverN) {
  const auto m = model::preset_config("owl2-7b");
  const auto c = onealign({"zero_stage=3"});
  const double bucket = c.ddp_bucket_cap_mb * (1 << 20);
  for (const int n : {2, 8}) {
    const auto p = train::plan_training(c, m, n, 80 * kGiB, kOnealignTokens);
    ASSERT_EQ(p.trainable_parameters, p.all_parameters);
    const auto& d = p.device_per_rank;
    const double state = static_cast<double>(d.parameters + d.gradients + d.masters + d.optimizer);
    const double design = 16.0 * static_cast<double>(p.all_parameters) / n;
    EXPECT_EQ(d.parameters, 0);
    SCOPED_TRACE("N = " + std::to_string(n) + ": gradients " + std::to_string(d.gradients));
    EXPECT_LE(state, 1.01 * design);
    EXPECT_GE(state, design);
    // The float32 shard, one bucket filling and one in flight (sent and received).
    EXPECT_LE(static_cast<double>(d.gradients), 4.0 * static_cast<double>(p.all_parameters) / n + 3 * bucket);
  }
}

TEST(Plan, OffloadMovesMastersAndMomentsToTheHost) {
  const auto m = model::preset_config("owl2-7b");
  for (const int64_t stage : {1, 2, 3}) {
    auto c = onealign();
    c.zero_stage = stage;
    const auto kept = train::plan_training(c, m, 4, 80 * kGiB, kOnealignTokens);
    c.offload_optimizer = "cpu";
    const auto moved = train::plan_training(c, m, 4, 80 * kGiB, kOnealignTokens);
    EXPECT_EQ(moved.device_per_rank.masters, 0);
    EXPECT_EQ(moved.device_per_rank.optimizer, 0);
    EXPECT_EQ(moved.host_per_rank.masters, kept.device_per_rank.masters);
    EXPECT_EQ(moved.host_per_rank.optimizer, kept.device_per_rank.optimizer);
    // At stage 3 the device then keeps its chunks of the trained parameters in bf16 (2·P/N): the
    // masters that were their values went to the host.
    EXPECT_EQ(moved.device_per_rank.parameters,
              kept.device_per_rank.parameters + (stage == 3 ? kept.device_per_rank.masters / 2 : 0));
    EXPECT_EQ(moved.device_per_rank.gradients + moved.host_per_rank.gradients, kept.device_per_rank.gradients);
    EXPECT_LT(moved.device_per_rank.total, kept.device_per_rank.total);
  }
}

TEST(Plan, SevenBillionOnOneCardNeedsAChange) {
  const auto p = train::plan_training(onealign(), model::preset_config("owl2-7b"), 1, 80 * kGiB, kOnealignTokens);
  EXPECT_FALSE(p.fits);
  EXPECT_NE(p.advice, "fits as configured");
  EXPECT_FALSE(p.advice.empty());
  EXPECT_NE(p.advice.find("set "), std::string::npos) << p.advice;
  // Its 16 bytes of state per parameter are 7B × 16 = 120 GB: only sharding to the host helps.
  EXPECT_NE(p.advice.find("offload_optimizer=cpu"), std::string::npos) << p.advice;
}

TEST(Plan, LargestMicroBatchGrowsWithMemory) {
  const auto c = onealign();
  const auto m = model::preset_config("owl2-7b");
  int64_t last = 0;
  for (int64_t gib = 40; gib <= 200; gib += 8) {
    const auto p = train::plan_training(c, m, 8, gib * kGiB, kOnealignTokens);
    EXPECT_GE(p.max_micro_batch, last) << gib << " GiB";
    EXPECT_EQ(p.fits, p.max_micro_batch >= c.per_device_train_batch_size) << gib << " GiB";
    last = p.max_micro_batch;
  }
  EXPECT_GT(last, 0);
}

// On a GPU the plan leaves room for the CUDA context, workspaces and NCCL (two communicators at
// stage 3); at stage 3 no moment holds the whole model (tests/test_zero3_streaming.cpp holds the
// run to that), so the state's total is the peak.
TEST(Plan, GpuHeadroomIsCountedAndStageThreeNeverHoldsTheWholeModel) {
  const auto m = model::preset_config("owl2-7b");
  const auto p = train::plan_training(onealign({"zero_stage=3"}), m, 8, 80 * kGiB, kOnealignTokens);
  const int64_t MiB = 1 << 20;
  EXPECT_EQ(p.device_headroom, (512 + 64 + 2 * 256) * MiB + 80 * kGiB / 20);
  EXPECT_LT(p.device_per_rank.parameters, 2 * p.all_parameters / 4);  // bf16, an eighth and the units gathered
  EXPECT_EQ(p.fits, p.device_per_rank.total + p.device_headroom <= 80 * kGiB);
  const auto two = train::plan_training(onealign({"zero_stage=2"}), m, 8, 80 * kGiB, kOnealignTokens);
  EXPECT_EQ(two.device_headroom, (512 + 64 + 256) * MiB + 80 * kGiB / 20);
  EXPECT_EQ(train::plan_training(onealign({"zero_stage=3", "device_memory_headroom_mb=1000"}), m, 8, 80 * kGiB,
                                 kOnealignTokens)
                .device_headroom,
            1000 * MiB);
  EXPECT_EQ(train::plan_training(onealign({"device=cpu"}), m, 8, 80 * kGiB, kOnealignTokens).device_headroom, 0);
  // Just above the state alone no longer fits: the headroom is part of the verdict.
  const auto tight =
      train::plan_training(onealign({"zero_stage=2"}), m, 8, two.device_per_rank.total + MiB, kOnealignTokens);
  EXPECT_FALSE(tight.fits);
}

// A video sample counts its sampled frames (read from the header) as visual blocks: in its tokens
// and in the vision tower's activations. The frames are counted independently here by decoding.
TEST(Plan, AVideoSampleCountsItsSampledFrames) {
  test::ScratchDir dir("qalign_plan_video");
  const auto write = [&](const std::string& name, const std::string& media) {
    std::ofstream(dir.file(name))
        << R"([{"id": "v", "image": ")" << media
        << R"(", "conversations": [{"from": "human", "value": "<|image|>\nRate the quality."},)"
        << R"( {"from": "gpt", "value": "The quality of the video is good."}]}])";
    return config::load_train_config(
        recipe(), {"data_path=" + dir.file(name), "image_folder=" + test::fixture("qalign-tiny/inputs"),
                   "model_name_or_path=" + test::fixture("qalign-tiny/model")});
  };
  const auto m = model::ModelConfig::from_json_file(test::fixture("qalign-tiny/model/config.json"));
  const auto video = train::sample_size(write("video.json", "video.mp4"), m);
  const auto picture = train::sample_size(write("picture.json", "img_wide.png"), m);
  const auto frames =
      static_cast<int64_t>(data::sample_video(test::fixture("qalign-tiny/inputs/video.mp4")).frames.size());
  ASSERT_GT(frames, 1);
  EXPECT_EQ(video.visual_blocks, frames);
  EXPECT_EQ(picture.visual_blocks, 1);
  EXPECT_EQ(video.tokens - picture.tokens, (frames - 1) * m.tokens_per_image());
  EXPECT_GT(train::plan_training(write("video2.json", "video.mp4"), m, 1, 80 * kGiB).device_per_rank.activations,
            train::plan_training(write("picture2.json", "img_wide.png"), m, 1, 80 * kGiB).device_per_rank.activations);
}

TEST(Plan, NothingFitsATinyCard) {
  const auto p = train::plan_training(onealign(), model::preset_config("owl2-7b"), 8, kGiB, kOnealignTokens);
  EXPECT_TRUE(p.nothing_fits);
  EXPECT_EQ(p.max_micro_batch, 0);
  EXPECT_NE(p.advice.find("does not fit even"), std::string::npos) << p.advice;
}

TEST(Plan, BadValuesNameTheirKey) {
  config::TrainConfig c;
  EXPECT_NE(error_of([&] { config::apply_override(c, "offload_optimizer=gpu"); }).find("offload_optimizer"),
            std::string::npos);
  EXPECT_NE(error_of([&] { config::apply_override(c, "zero3_prefetch_blocks=-1"); }).find("zero3_prefetch_blocks"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              onealign({"zero_stage=0", "offload_optimizer=cpu"});
            }).find("offload_optimizer"),
            std::string::npos);
  std::string out;
  EXPECT_NE(test::run_command("'" + test::qalign_binary() + "' plan --config " + test::source_dir() +
                                  "/configs/onealign.yaml --preset owl2-7b --nproc-per-node 8 --gpu-memory 1GiB",
                              &out),
            0);
  EXPECT_NE(out.find("--gpu-memory"), std::string::npos) << out;
  EXPECT_NE(test::run_command("'" + test::qalign_binary() + "' plan --config " + test::source_dir() +
                                  "/configs/onealign.yaml --preset owl2-7b --nproc-per-node 8 --gpu-memory 80XB",
                              &out),
            0);
  EXPECT_NE(out.find("--gpu-memory"), std::string::npos) << out;
}

TEST(Plan, JsonHasEveryTermInBytes) {
  std::string out;
  ASSERT_EQ(
      test::run_command("'" + test::qalign_binary() + "' plan --config " + test::source_dir() +
                            "/configs/onealign.yaml --preset owl2-7b --nproc-per-node 8 --gpu-memory 141GB --json",
                        &out),
      0)
      << out;
  const auto j = nlohmann::json::parse(out.substr(out.find('{')));
  for (const char* side : {"device_per_rank", "host_per_rank"})
    for (const char* term : {"parameters", "gradients", "masters", "optimizer", "activations", "buffers", "total"})
      EXPECT_TRUE(j.at(side).at(term).is_number_integer()) << side << "." << term;
  EXPECT_TRUE(j.at("fits").is_boolean());
  EXPECT_TRUE(j.at("max_micro_batch").is_number_integer());
  EXPECT_TRUE(j.at("advice").is_string());
}

}  // namespace
