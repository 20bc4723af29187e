// The released model's widths in CI: `owl2-7b-1l` (the 8.2 B model's hidden sizes, heads, 448 px
// ViT, 6-layer abstractor with 64 queries and 32 000 words, cut to one decoder and one ViT layer:
// 0.6 B parameters) through the real command, in bf16: init, score at batch 1 and 2, one LoRA step
// of the authors' recipe whose folder `score --lora` serves, and one ZeRO-3 step on 2 Gloo ranks.
// One model is drawn for the whole sequence (its 594 M values take ~20 s, ATen's normal_ on one
// thread); each step's seconds and peak memory are printed.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "qalign/io/safetensors.h"
#include "qalign/model/presets.h"
#include "tests/support/fixtures.h"

namespace qalign::full_width {

namespace fs = std::filesystem;

const std::string kPreset = "owl2-7b-1l";
const std::string kPhotos = "tests/fixtures/qalign-448/inputs";
// Each process stays well under the machine's share (4 GB): the bf16 weights are 1.2 GB.
constexpr double kMaxProcessMb = 4000;

test::Measured run_step(const std::string& what, const std::string& command, double limit_s = 120) {
  const auto m = test::run_shell_measured("exec " + command, limit_s);
  std::cout << "[ measured ] " << what << ": " << m.seconds << " s, " << m.peak_mb << " MB peak\n";
  EXPECT_EQ(m.exit_code, 0) << what << "\n" << m.output;
  EXPECT_FALSE(m.timed_out) << what;
  EXPECT_LT(m.peak_mb, kMaxProcessMb) << what;
  return m;
}

std::string qalign() { return "'" + test::qalign_binary() + "' "; }

// score → "score" per input path, from --json rows.
std::map<std::string, double> scores(const std::string& output) {
  std::map<std::string, double> out;
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] != '{') continue;
    const auto row = nlohmann::json::parse(line);
    out[row.at("input").get<std::string>()] = row.at("score").get<double>();
  }
  return out;
}

void expect_scores_in_range(const std::map<std::string, double>& s, size_t n) {
  ASSERT_EQ(s.size(), n);
  for (const auto& [path, v] : s) {
    EXPECT_TRUE(std::isfinite(v)) << path;
    EXPECT_GE(v, 1.0) << path;  // the expectation over the five levels, weighted 1..5
    EXPECT_LE(v, 5.0) << path;
  }
}

// Two photographs, one per rank at micro-batch 1, with the authors' prompt and answer.
std::string write_samples(const test::ScratchDir& d) {
  nlohmann::json samples = nlohmann::json::array();
  for (const std::string image : {"baboon.jpg", "building.jpg"})
    samples.push_back({{"id", image},
                       {"image", image},
                       {"conversations",
                        {{{"from", "human"}, {"value", "How would you rate the quality of this image?\n<|image|>"}},
                         {{"from", "gpt"}, {"value", "The quality of the image is good."}}}}});
  const auto path = d.file("samples.json");
  test::write_file(path, samples.dump());
  return path;
}

// The authors' LoRA recipe (q_proj and v_proj.multiway.1, bf16, activation checkpointing) at
// micro-batch 1 for one step, without the warm-up that would make its rate 0; a smaller rank than
// their 128 keeps the step short.
std::string lora_step(const std::string& model, const std::string& samples, const std::string& out) {
  return qalign() + "train --config configs/l1_koniq_lora.yaml model_name_or_path=" + model + " data_path=" + samples +
         " image_folder=" + kPhotos + " output_dir=" + out +
         " max_steps=1 warmup_ratio=0 per_device_train_batch_size=1 lora_r=8 lora_alpha=16 dataloader_num_workers=1";
}

TEST(FullWidth, InitScoreLoraStepAndZero3StepAtTheReleasedWidths) {
  test::ScratchDir d("qalign-full-width");
  const auto model = d.file("model");
  run_step("init " + kPreset + " bf16", qalign() + "init --preset " + kPreset +
                                            " --dtype bfloat16 --tokenizer tests/fixtures/llama2-tokenizer --out " +
                                            model);
  const auto config = model::preset_config(kPreset);
  ASSERT_EQ(config.vocab_size, 32000);
  ASSERT_EQ(config.num_hidden_layers, 1);
  ASSERT_EQ(config.vision.num_hidden_layers, 1);
  ASSERT_EQ(config.vision.image_size, 448);
  ASSERT_EQ(config.abstractor.num_learnable_queries, 64);

  // Scoring: the same photographs alone and as one batch of two agree within bf16 rounding.
  const std::string photos = kPhotos + "/baboon.jpg " + kPhotos + "/building.jpg";
  const std::string score = qalign() + "score --json --dtype bfloat16 --model " + model;
  const auto one = scores(run_step("score batch 1", score + " --batch-size 1 " + photos).output);
  const auto two = scores(run_step("score batch 2", score + " --batch-size 2 " + photos).output);
  expect_scores_in_range(one, 2);
  expect_scores_in_range(two, 2);
  for (const auto& [path, v] : one) EXPECT_NEAR(two.at(path), v, 0.02) << path;

  // One LoRA step; its folder holds the recipe's adapters only (layer 0's q_proj and visual
  // v_proj branch, A and B each) and scores.
  const auto samples = write_samples(d);
  const auto lora = d.file("lora");
  run_step("LoRA step", lora_step(model, samples, lora));
  const auto adapters = io::SafetensorsFile::open(lora + "/adapter_model.safetensors");
  EXPECT_EQ(adapters->tensors().size(), 4u);
  for (const auto& t : adapters->tensors()) {
    EXPECT_TRUE(t.shape[0] == 8 || t.shape[1] == 8) << t.name;
    // B starts at zero: the step (no warm-up, so at the recipe's full rate) moved it.
    if (t.name.find("lora_B") != std::string::npos)
      EXPECT_GT(adapters->get(t.name).abs().max().item<double>(), 0.0) << t.name;
  }
  expect_scores_in_range(
      scores(run_step("score --lora", score + " --lora " + lora + " " + kPhotos + "/baboon.jpg").output), 1);

  // One ZeRO-3 step of the same recipe on 2 Gloo ranks, one photograph each.
  const auto zero3 = d.file("zero3");
  // One thread each: the two ranks share the machine's cores.
  run_step("ZeRO-3 step, 2 ranks", "env OMP_NUM_THREADS=1 " + qalign() + "launch --nproc-per-node 2 --master-port " +
                                       std::to_string(test::free_port()) + " -- " + lora_step(model, samples, zero3) +
                                       " zero_stage=3");
  const auto rows = test::read_jsonl(zero3 + "/metrics.jsonl");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_TRUE(std::isfinite(rows[0].at("loss").get<double>())) << rows[0];
  EXPECT_EQ(rows[0].value("memory_report", nlohmann::json()).size(), 2u) << rows[0];
  EXPECT_TRUE(fs::exists(zero3 + "/adapter_model.safetensors"));
  // Each rank's peak of tensor bytes within 10 % of the plan for the same run (issue 33). Gloo's
  // all-gather copying out of a buffer of its whole output once held each frozen unit twice in
  // flight: 1.14 × the plan at these widths.
  auto plan_cmd = lora_step(model, samples, zero3 + "-plan") + " zero_stage=3";
  plan_cmd.replace(plan_cmd.find("train --config"), 5, "plan --json --nproc-per-node 2");
  const auto plan = run_step("plan", plan_cmd).output;
  const auto at = plan.find('{');
  ASSERT_NE(at, std::string::npos) << plan;
  const auto planned =
      nlohmann::json::parse(plan.substr(at, plan.find('\n', at) - at))["device_per_rank"]["total"].get<double>();
  for (const auto& rank : rows[0].at("memory"))
    EXPECT_LE(rank.at("peak_allocated").get<double>(), 1.10 * planned) << rank << " against the plan's " << planned;
}

}  // namespace qalign::full_width
