// `qalign bench` and the FLOP count it divides by: the analytic count equals one made here from
// the model's own parameter shapes, the 7B scoring count is the ~2 TFLOP per image the issue
// states, and each sub-benchmark's JSON carries its fields with consistent arithmetic.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "qalign/base/error.h"
#include "qalign/model/flops.h"
#include "qalign/model/owl2.h"
#include "qalign/model/presets.h"
#include "tests/support/fixtures.h"

using namespace qalign;

namespace {

// 2 × (weights a token passes through) per token, from the parameters named `prefix`…, with
// multiway layers counted once (each token uses one copy) and vectors (norms, biases) left out.
double weight_flops(model::Owl2ForCausalLM& m, const std::string& prefix, const std::string& skip, double tokens) {
  double n = 0;
  for (const auto& p : m->named_parameters()) {
    const auto& name = p.key();
    if (name.rfind(prefix, 0) != 0 || p.value().dim() != 2 || name.find("multiway.1") != std::string::npos) continue;
    if (!skip.empty() && name.find(skip) != std::string::npos) continue;
    n += static_cast<double>(p.value().numel());
  }
  return 2 * n * tokens;
}

nlohmann::json bench(const std::string& args) {
  std::string out;
  const int rc =
      test::run_command("cd '" + test::source_dir() + "' && '" + test::qalign_binary() + "' bench " + args, &out);
  EXPECT_EQ(rc, 0) << out;
  const auto at = out.rfind("{\"bench\"");  // the JSON line, after any log lines
  if (at == std::string::npos) ADD_FAILURE() << out;
  return nlohmann::json::parse(out.substr(at == std::string::npos ? 0 : at), nullptr, false);
}

}  // namespace

TEST(Flops, LanguageAndVisionEqualACountFromTheParameterShapes) {
  for (const auto* preset : {"tiny", "small"}) {
    SCOPED_TRACE(preset);
    const auto c = model::preset_config(preset);
    model::Owl2ForCausalLM m(c, torch::TensorOptions().device(torch::kMeta));
    const int64_t text = 40, L = text + c.tokens_per_image();
    const auto f = model::forward_flops(c, 1, text, 7);
    const double attention = 4.0 * L * L * c.hidden_size * c.num_hidden_layers;
    EXPECT_DOUBLE_EQ(f.language, weight_flops(m, "model.layers.", "", static_cast<double>(L)) + attention);
    EXPECT_DOUBLE_EQ(f.lm_head, 2.0 * 7 * c.hidden_size * c.vocab_size);
    const double nv = static_cast<double>(c.num_patches() + 1);
    const double vit_attention = 4.0 * nv * nv * c.vision.hidden_size * c.vision.num_hidden_layers;
    const double patch = 2.0 * c.num_patches() * 3 * c.vision.patch_size * c.vision.patch_size * c.vision.hidden_size;
    EXPECT_DOUBLE_EQ(f.vision, weight_flops(m, "model.vision_model.encoder.", "", nv) + vit_attention + patch);
  }
}

// "One image costs about 2 TFLOP (the ViT over 1 025 tokens and the language model over ~92
// positions; the output layer at the last position only)" — the issue's estimate for 7B scoring.
TEST(Flops, SevenBillionScoringIsAboutTwoTeraflopPerImage) {
  const auto c = model::preset_config("owl2-7b");
  const auto f = model::forward_flops(c, 1, 92 - c.tokens_per_image(), 1);
  EXPECT_GT(f.total(), 1.8e12);
  EXPECT_LT(f.total(), 2.2e12);
  EXPECT_EQ(model::preset_config("owl2-7b-4l").num_hidden_layers, 4);
  EXPECT_EQ(model::preset_config("owl2-7b-4l").vision.num_hidden_layers, 4);
  EXPECT_THROW(model::preset_config("owl2-7b-0l"), Error);
  EXPECT_THROW(model::preset_config("large"), Error);
}

// A path ending in .json is a model's config.json, so the demo's model can be timed as it trains.
TEST(Flops, PresetMayBeAConfigFile) {
  const auto c = model::preset_config(test::source_dir() + "/configs/demo_model.json");
  EXPECT_EQ(c.hidden_size, 128);
  EXPECT_EQ(c.vision.patch_size, 4);
  EXPECT_EQ(c.vision.image_size, 64);
  EXPECT_THROW(model::preset_config(test::source_dir() + "/configs/absent.json"), Error);
}

TEST(BenchCli, TrainStepReportsMfuAgainstTheSameRunsPeak) {
  const auto j = bench("train-step --preset tiny --batch-size 2 --warmup 1 --repeats 1 --json");
  for (const auto* key : {"bench", "preset", "batch_size", "device", "dtype", "step_ms", "samples_per_s",
                          "tokens_per_s", "flops_per_step", "achieved_flops", "peak_flops", "mfu"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["bench"], "train-step");
  EXPECT_GT(j["flops_per_step"].get<double>(), 0);
  EXPECT_NEAR(j["achieved_flops"].get<double>(), j["flops_per_step"].get<double>() / (j["step_ms"].get<double>() / 1e3),
              1e-6 * j["achieved_flops"].get<double>());
  EXPECT_NEAR(j["mfu"].get<double>(), j["achieved_flops"].get<double>() / j["peak_flops"].get<double>(), 1e-9);
  EXPECT_NEAR(j["samples_per_s"].get<double>(), 2 / (j["step_ms"].get<double>() / 1e3), 1e-6);
  // The trainer's own figures: one rank, its peak memory and the tensors' memory report.
  EXPECT_EQ(j["ranks"], 1);
  ASSERT_EQ(j["memory"].size(), 1u);
  EXPECT_GT(j["memory"][0]["peak_allocated"].get<double>(), 0);
  ASSERT_EQ(j["memory_report"].size(), 1u);
  EXPECT_EQ(j["memory_report"][0]["optimizer"].get<int64_t>(), 8 * j["trainable_parameters"].get<int64_t>());
  EXPECT_EQ(j["trainable_parameters"], j["parameters"]);  // the whole model, as the authors' full fine-tune
}

// The same Trainer with the authors' LoRA recipe and activation checkpointing: only the adapters
// and the abstractor train, so AdamW's state covers far fewer parameters than the model has.
TEST(BenchCli, TrainStepDrivesTheTrainerWithLoraAndCheckpointing) {
  const auto j =
      bench("train-step --preset tiny --batch-size 2 --warmup 0 --repeats 2 --lora --gradient-checkpointing --json");
  EXPECT_TRUE(j["lora"].get<bool>());
  EXPECT_TRUE(j["gradient_checkpointing"].get<bool>());
  const auto trainable = j["trainable_parameters"].get<int64_t>();
  EXPECT_GT(trainable, 0);
  EXPECT_LT(trainable, j["parameters"].get<int64_t>());
  EXPECT_EQ(j["memory_report"][0]["optimizer"].get<int64_t>(), 8 * trainable);
}

TEST(BenchCli, ScoreAndDataReportTheirRows) {
  const auto s = bench("score --preset tiny --batch-sizes 1,2 --warmup 0 --repeats 1 --json");
  ASSERT_EQ(s["batches"].size(), 2u);
  EXPECT_EQ(s["batches"][1]["batch_size"], 2);
  EXPECT_GT(s["batches"][1]["images_per_s"].get<double>(), 0);

  if (!std::ifstream("/usr/share/doc/opencv-doc/examples/data/baboon.jpg"))
    GTEST_SKIP() << "opencv-doc is not installed (scripts/setup.sh installs it)";
  const auto d = bench("data --threads 1 --images-per-thread 2 --json");
  ASSERT_EQ(d["rows"].size(), 2u);
  for (const auto& r : d["rows"]) {
    EXPECT_GT(r["images_per_s"].get<double>(), 0);
    EXPECT_NEAR(r["ratio_to_opencv"].get<double>(),
                r["images_per_s"].get<double>() / r["opencv_images_per_s"].get<double>(), 1e-9);
  }
}
