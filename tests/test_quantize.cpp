// --quantize int8 | int4: the language model's linears with quantised weights score the golden
// fixtures within a stated tolerance of float32, deterministically, the same in a batch as alone;
// bad combinations fail naming the option (and the layer).
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "data/preprocess.h"
#include "qalign/io/weights.h"
#include "qalign/model/quantize.h"
#include "qalign/model/quantized_weight.h"
#include "qalign/scorer.h"
#include "tests/support/fixtures.h"

using namespace qalign;

namespace {

// Largest differences from float32 allowed for a level probability and for the 1-5 score. The
// fixture is a random tiny model (inputs 64 and 128 wide, weights N(0, 0.02)), where each
// layer's rounding error is a far larger share of its output than in a trained model at full size.
// Measured on this CPU (the kernels take bfloat16 activations): at most int8 0.006, int4 in
// groups of 32 0.06 / 0.12, of 64 0.05 / 0.08.
// The bounds are twice that, for other CPUs' kernels (sums in another order).
struct Mode {
  std::string flags;
  model::QuantizeOptions options;
  double prob_tolerance, score_tolerance;
};
const std::vector<Mode>& modes() {
  static const std::vector<Mode> m = {{"--quantize int8", {"int8", 128}, 6e-3, 1.2e-2},
                                      {"--quantize int4 --group-size 32", {"int4", 32}, 0.12, 0.25},
                                      {"--quantize int4 --group-size 64", {"int4", 64}, 0.12, 0.25}};
  return m;
}

std::string tiny_model() { return test::fixture("qalign-tiny/model"); }

nlohmann::json golden_case(const std::string& c) {
  return nlohmann::json::parse(std::ifstream(test::fixture("qalign-tiny/golden.json")))["cases"][c];
}

std::map<std::string, nlohmann::json> score_rows(const std::string& args) {
  std::string out;
  const int rc = test::run_command(test::qalign_binary() + " score --json " + args, &out);
  EXPECT_EQ(rc, 0) << out;
  std::map<std::string, nlohmann::json> rows;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);)
    if (!line.empty() && line[0] == '{') {
      const auto j = nlohmann::json::parse(line);
      rows[j["input"].get<std::string>()] = j;
    }
  return rows;
}

Scorer quantized_scorer(const model::QuantizeOptions& o, torch::Dtype dtype = torch::kFloat32) {
  auto m = io::load_pretrained(tiny_model(), dtype);
  model::quantize_linears(m, o);
  return Scorer(m, Tokenizer(tiny_model()));
}

// Eight different pictures from the fixture's three.
std::vector<torch::Tensor> eight_pictures(int64_t size) {
  std::vector<torch::Tensor> out;
  for (const char* name : {"img_wide.png", "img_tall.jpg", "img_big.png"}) {
    const auto p = data::load_image_tensor(test::fixture(std::string("qalign-tiny/inputs/") + name), size);
    out.push_back(p.unsqueeze(0));
    out.push_back(p.flip(-1).unsqueeze(0));
    if (out.size() < 8) out.push_back(p.flip(-2).unsqueeze(0));
  }
  return out;
}

std::string failure_of(const std::string& args) {
  std::string out;
  EXPECT_NE(test::run_command(test::qalign_binary() + " " + args, &out), 0) << out;
  return out;
}

}  // namespace

TEST(QuantizeCli, EveryModeScoresTheGoldenFixturesWithinItsTolerance) {
  const auto in = test::fixture("qalign-tiny/inputs/");
  const std::vector<std::pair<std::string, std::string>> items = {{"img_wide.png", "image.img_wide"},
                                                                  {"img_tall.jpg", "image.img_tall"},
                                                                  {"img_big.png", "image.img_big"},
                                                                  {"video.avi", "video"}};
  std::string paths;
  for (const auto& [file, c] : items) paths += " " + in + file;
  for (const auto& mode : modes()) {
    const auto rows = score_rows(mode.flags + " --model " + tiny_model() + paths);
    ASSERT_EQ(rows.size(), items.size()) << mode.flags;
    double largest = 0;
    for (const auto& [file, c] : items) {
      const auto& row = rows.at(in + file);
      const auto g = golden_case(c);
      for (size_t k = 0; k < kLevelWords.size(); ++k) {
        const double d = std::abs(row["probs"][kLevelWords[k]].get<double>() - g["level_probs"][0][k].get<double>());
        EXPECT_LE(d, mode.prob_tolerance) << mode.flags << " " << file << " " << kLevelWords[k];
        largest = std::max(largest, d);
      }
      const double d = std::abs(row["score"].get<double>() - g["score_model"][0].get<double>());
      EXPECT_LE(d, mode.score_tolerance) << mode.flags << " " << file << " score";
      largest = std::max(largest, d);
    }
    std::cout << mode.flags << ": largest difference from float32 " << largest << "\n";
    EXPECT_GT(largest, 1e-7) << mode.flags << " scored exactly as float32: the weights were not quantised";
  }
}

TEST(Quantize, AModelLoadedTwiceScoresBitwiseTheSame) {
  for (const auto& mode : modes())
    for (const auto dtype : {torch::kFloat32, torch::kBFloat16}) {
      auto first = quantized_scorer(mode.options, dtype), second = quantized_scorer(mode.options, dtype);
      const auto pictures = eight_pictures(first.image_size());
      const auto a = first.score(pictures, Task::kQuality, Media::kImage);
      const auto b = second.score(pictures, Task::kQuality, Media::kImage);
      EXPECT_TRUE(torch::equal(a.probs, b.probs)) << mode.flags << " " << dtype;
    }
}

TEST(Quantize, BatchOfEightEqualsEightSingleImages) {
  for (const auto& mode : modes()) {
    auto scorer = quantized_scorer(mode.options);
    const auto pictures = eight_pictures(scorer.image_size());
    const auto batch = scorer.score(pictures, Task::kQuality, Media::kImage);
    for (size_t i = 0; i < pictures.size(); ++i) {
      const auto alone = scorer.score({pictures[i]}, Task::kQuality, Media::kImage);
      EXPECT_LE((batch.probs[i] - alone.probs[0]).abs().max().item<double>(), mode.prob_tolerance)
          << mode.flags << " " << i;
    }
  }
}

TEST(Quantize, OnlyTheLanguageModelsLinearsLoseTheirFloatWeights) {
  auto m = io::load_pretrained(tiny_model());
  model::quantize_linears(m, {"int8", 128});
  const auto params = m->named_parameters();
  for (const char* gone :
       {"model.layers.0.self_attn.q_proj.weight", "model.layers.1.self_attn.k_proj.multiway.1.weight",
        "model.layers.0.self_attn.v_proj.multiway.0.weight", "model.layers.1.self_attn.o_proj.weight",
        "model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.up_proj.weight",
        "model.layers.1.mlp.down_proj.weight"})
    EXPECT_EQ(params.find(gone), nullptr) << gone;
  for (const char* kept : {"lm_head.weight", "model.embed_tokens.weight", "model.norm.weight",
                           "model.layers.0.input_layernorm.multiway.1.weight"})
    EXPECT_NE(params.find(kept), nullptr) << kept;
  EXPECT_TRUE(m->model->layers[0]->as<model::LlamaDecoderLayerImpl>()->self_attn->q_proj->quantized);
}

TEST(Quantize, Int8ProductIsTheRoundedWeightsProduct) {
  torch::manual_seed(3);
  const auto w = torch::randn({32, 64}), x = torch::randn({2, 5, 64});
  const auto scale = w.abs().amax(1, true) / 127;
  const auto expected = torch::matmul(x, ((w / scale).round() * scale).t());
  const auto y = model::quantize_int8(w)->matmul(x);
  EXPECT_EQ(y.sizes(), expected.sizes());
  // The kernel runs in bfloat16 (8 significant bits): within 1 % of the largest output.
  EXPECT_LE((y - expected).abs().max().item<double>(), 1e-2 * expected.abs().max().item<double>());
}

// The packed int4 kernel computes with the codes and the per-group scales and zeros we chose.
TEST(Quantize, Int4ProductIsTheGroupedCodesProduct) {
  torch::manual_seed(4);
  const int64_t group = 32;
  const auto w = torch::randn({48, 128}), x = torch::randn({3, 128});
  const auto g = w.reshape({-1, group});
  // Scales and zeros are kept in bfloat16; the codes are found against those rounded values.
  auto bf16 = [](const torch::Tensor& t) { return t.to(torch::kBFloat16).to(torch::kFloat32); };
  const auto lo = g.amin(1, true), scale = bf16((g.amax(1, true) - lo) / 15), zero = bf16(lo + scale * 8);
  const auto codes = ((g - (zero - scale * 8)) / scale).round().clamp(0, 15);
  const auto dequantised = ((codes - 8) * scale + zero).reshape({48, 128});
  const auto y = model::quantize_int4(w, group)->matmul(x);
  const auto expected = torch::matmul(x, dequantised.t());
  EXPECT_LE((y - expected).abs().max().item<double>(), 1e-2 * expected.abs().max().item<double>());
}

TEST(QuantizeCli, BadCombinationsNameTheOption) {
  const auto img = test::fixture("qalign-tiny/inputs/img_wide.png");
  const auto score = "score --model " + tiny_model() + " " + img + " ";
  auto out = failure_of(score + "--quantize int3");
  EXPECT_NE(out.find("--quantize"), std::string::npos) << out;
  EXPECT_NE(out.find("int3"), std::string::npos) << out;
  out = failure_of(score + "--quantize fp8");
  EXPECT_NE(out.find("--quantize"), std::string::npos) << out;
  EXPECT_NE(out.find("needs a Hopper GPU"), std::string::npos) << out;
  out = failure_of(score + "--quantize int4 --group-size 48");
  EXPECT_NE(out.find("--group-size"), std::string::npos) << out;
  EXPECT_NE(out.find("48"), std::string::npos) << out;
  // The tiny model's inputs are 64 and 128 wide: the default group of 128 does not divide 64.
  out = failure_of(score + "--quantize int4");
  EXPECT_NE(out.find("--group-size"), std::string::npos) << out;
  EXPECT_NE(out.find("model.layers.0.self_attn.q_proj"), std::string::npos) << out;
  out = failure_of("eval --model " + tiny_model() + " --data " + test::fixture("qalign-tiny/inputs/train.json") +
                   " --quantize fp8");
  EXPECT_NE(out.find("--quantize"), std::string::npos) << out;
  out = failure_of("bench score --preset tiny --quantize int4 --group-size 100");
  EXPECT_NE(out.find("--group-size"), std::string::npos) << out;
}

TEST(QuantizeCli, BenchScoreRunsQuantised) {
  std::string out;
  ASSERT_EQ(test::run_command("cd '" + test::source_dir() + "' && " + test::qalign_binary() +
                                  " bench score --preset tiny --quantize int4 --group-size 32 --batch-sizes 1,2 "
                                  "--warmup 0 --repeats 1 --json",
                              &out),
            0)
      << out;
  const auto j = nlohmann::json::parse(out.substr(out.rfind("{\"bench\"")));
  EXPECT_EQ(j["quantize"], "int4");
  EXPECT_EQ(j["group_size"], 32);
  EXPECT_EQ(j["batches"].size(), 2u);
}

// eval quantises the same way and records the mode, so a folder of int8 predictions is never
// resumed by a float32 run.
TEST(QuantizeCli, EvalRecordsTheModeAndKeepsItsPredictionsApart) {
  const test::ScratchDir scratch("qalign-quantize-eval");
  const auto data = scratch.path() + "/set.json", out = scratch.path() + "/out";
  test::write_file(data, R"([{"image": "img_wide.png", "gt_score": 3.5}, {"image": "img_tall.jpg", "gt_score": 1.25},
    {"image": "img_big.png", "gt_score": 4.0}])");
  const auto eval = test::qalign_binary() + " eval --model " + tiny_model() + " --data " + data + " --image-folder " +
                    test::fixture("qalign-tiny/inputs") + " --out " + out;
  std::string log;
  ASSERT_EQ(test::run_command(eval + " --quantize int8", &log), 0) << log;
  const auto job = nlohmann::json::parse(test::read_file(out + "/job.json"));
  EXPECT_EQ(job["quantize"]["mode"], "int8") << job.dump();
  EXPECT_EQ(test::read_jsonl(out + "/predictions.jsonl").size(), 3u);
  EXPECT_NE(test::run_command(eval, &log), 0) << log;
  EXPECT_NE(log.find("describes differently"), std::string::npos) << log;
}
