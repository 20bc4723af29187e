// Every scoring mode through `qalign score`: --dtype float32 | bfloat16, each alone and with
// --quantize int8 or int4 in groups of 32 and 64 (128 does not divide the fixtures' 64-wide
// inputs: an error, below). Per mode: the golden fixtures (the authors' float32 scores) within the
// mode's stated tolerance; two loads score bitwise the same; a batch of eight pictures scores as
// the eight alone, within the same tolerance. (test_quantize.cpp: the kernels, which layers are
// quantised, eval and bench.)
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <sstream>

#include "qalign/scorer.h"
#include "tests/support/fixtures.h"

using namespace qalign;

// Named, not anonymous, and holding the tests: the tests build as unity files, where
// test_quantize.cpp's helpers of the same names share a scope.
namespace quantize_modes {

// Largest differences from the float32 goldens allowed for a level probability and for the 1-5
// score. The fixtures are random tiny models (inputs 64 and 128 wide, weights N(0, 0.02)), where
// each layer's rounding is a far larger share of its output than in a trained model (the demo's:
// experiments/bench/README.md, "Accuracy per mode"). Measured on this CPU, the larger of the two
// fixtures (probability / score): float32 4e-7 / 1.2e-6; bfloat16 0.0051 / 0.012; bfloat16 + int8
// 0.013 / 0.029; bfloat16 + int4 in groups of 32 0.10 / 0.11, of 64 0.10 / 0.23; float32 + int8
// 0.0036 / 0.0096. The bounds are twice those, for other CPUs' kernels (sums in another order);
// float32 keeps the goldens' 1e-5. float32 + int4 runs the same bfloat16 kernel as bfloat16 + int4
// (test_quantize.cpp scores it on qalign-tiny); each mode costs two or three runs of qalign here.
struct Mode {
  std::string flags;
  double prob_tolerance, score_tolerance;
  bool quantized;
};
const std::vector<Mode>& modes() {
  static const std::vector<Mode> m = {{"--dtype float32", 1e-5, 1e-5, false},
                                      {"--dtype bfloat16", 0.011, 0.024, false},
                                      {"--dtype bfloat16 --quantize int8", 0.026, 0.058, true},
                                      {"--dtype bfloat16 --quantize int4 --group-size 32", 0.21, 0.22, true},
                                      {"--dtype bfloat16 --quantize int4 --group-size 64", 0.21, 0.47, true},
                                      {"--dtype float32 --quantize int8", 0.0072, 0.02, true}};
  return m;
}

using Rows = std::map<std::string, nlohmann::json>;  // by input path

Rows score(const std::string& model, const std::vector<std::string>& inputs, const std::string& flags) {
  std::string cmd = test::qalign_binary() + " score --json --model " + model + " " + flags;
  for (const auto& input : inputs) cmd += " '" + input + "'";
  std::string out;
  EXPECT_EQ(test::run_command(cmd, &out), 0) << cmd << "\n" << out;
  Rows rows;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);)
    if (!line.empty() && line[0] == '{') {
      const auto j = nlohmann::json::parse(line);
      rows[j["input"].get<std::string>()] = j;
    }
  EXPECT_EQ(rows.size(), inputs.size()) << cmd << "\n" << out;
  return rows;
}

// The largest difference between two rows' level probabilities, and between their scores.
std::pair<double, double> difference(const nlohmann::json& a, const nlohmann::json& b) {
  double prob = 0;
  for (const char* w : kLevelWords)
    prob = std::max(prob, std::abs(a["probs"][w].get<double>() - b["probs"][w].get<double>()));
  return {prob, std::abs(a["score"].get<double>() - b["score"].get<double>())};
}

// A golden case as a score row: its level probabilities and the model's score.
nlohmann::json golden_row(const std::string& fixture, const std::string& c) {
  const auto g = nlohmann::json::parse(test::read_file(test::fixture(fixture + "/golden.json")))["cases"][c];
  nlohmann::json row;
  for (size_t k = 0; k < kLevelWords.size(); ++k) row["probs"][kLevelWords[k]] = g["level_probs"][0][k];
  row["score"] = g["score_model"][0];
  return row;
}

// Each fixture's inputs with their golden cases.
const std::vector<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>>& fixtures() {
  static const std::vector<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>> f = {
      {"qalign-tiny",
       {{"img_wide.png", "image.img_wide"},
        {"img_tall.jpg", "image.img_tall"},
        {"img_big.png", "image.img_big"},
        {"video.avi", "video"}}},
      {"qalign-448",
       {{"baboon.jpg", "image.baboon"},
        {"building.jpg", "image.building"},
        {"smarties.png", "image.smarties"},
        {"megamind_3s.avi", "video"}}}};
  return f;
}

std::string input_path(const std::string& fixture, const std::string& file) {
  return test::fixture(fixture + "/inputs/" + file);
}

// Eight different pictures: the two fixtures' six and two mirrored copies written to `dir`.
std::vector<std::string> eight_pictures(const test::ScratchDir& dir) {
  std::vector<std::string> out;
  for (const auto& [fixture, items] : fixtures())
    for (const auto& [file, c] : items)
      if (c != "video") out.push_back(input_path(fixture, file));
  for (const auto& [file, axis] : {std::pair<std::string, int>{"img_wide.png", 1}, {"img_tall.jpg", 0}}) {
    cv::Mat mirrored;
    cv::flip(cv::imread(input_path("qalign-tiny", file)), mirrored, axis);
    out.push_back(dir.file("mirrored_" + std::filesystem::path(file).stem().string() + ".png"));
    EXPECT_TRUE(cv::imwrite(out.back(), mirrored)) << out.back();
  }
  return out;
}

std::string failure_of(const std::string& args) {
  std::string out;
  EXPECT_NE(test::run_command(test::qalign_binary() + " " + args, &out), 0) << args << "\n" << out;
  return out;
}

TEST(QuantizeModesCli, EveryModeScoresTheGoldenFixturesWithinItsTolerance) {
  for (const auto& mode : modes())
    for (const auto& [fixture, items] : fixtures()) {
      std::vector<std::string> inputs;
      for (const auto& [file, c] : items) inputs.push_back(input_path(fixture, file));
      const auto rows = score(test::fixture(fixture + "/model"), inputs, mode.flags);
      std::pair<double, double> largest{0, 0};
      for (const auto& [file, c] : items) {
        if (!rows.count(input_path(fixture, file))) continue;
        const auto [prob, score] = difference(rows.at(input_path(fixture, file)), golden_row(fixture, c));
        EXPECT_LE(prob, mode.prob_tolerance) << mode.flags << " " << fixture << " " << file;
        EXPECT_LE(score, mode.score_tolerance) << mode.flags << " " << fixture << " " << file;
        largest = {std::max(largest.first, prob), std::max(largest.second, score)};
      }
      std::cout << mode.flags << " " << fixture << ": largest difference from float32 " << largest.first << " / "
                << largest.second << "\n";
    }
}

TEST(QuantizeModesCli, AModelLoadedTwiceScoresBitwiseTheSame) {
  const test::ScratchDir dir("qalign-modes-twice");
  const auto pictures = eight_pictures(dir);
  const auto model = test::fixture("qalign-tiny/model");
  for (const auto& mode : modes()) {
    if (!mode.quantized) continue;
    const auto first = score(model, pictures, mode.flags + " --batch-size 8");
    const auto second = score(model, pictures, mode.flags + " --batch-size 8");
    for (const auto& [input, row] : first) EXPECT_EQ(row, second.at(input)) << mode.flags << " " << input;
  }
}

TEST(QuantizeModesCli, BatchOfEightEqualsEightSingleImages) {
  const test::ScratchDir dir("qalign-modes-batch");
  const auto pictures = eight_pictures(dir);
  const auto model = test::fixture("qalign-tiny/model");
  for (const auto& mode : modes()) {
    const auto batch = score(model, pictures, mode.flags + " --batch-size 8");
    const auto alone = score(model, pictures, mode.flags + " --batch-size 1");
    for (const auto& [input, row] : batch) {
      const auto [prob, score] = difference(row, alone.at(input));
      EXPECT_LE(prob, mode.prob_tolerance) << mode.flags << " " << input;
      EXPECT_LE(score, mode.score_tolerance) << mode.flags << " " << input;
    }
  }
}

TEST(QuantizeModesCli, BadCombinationsNameTheOptionAndTheLayer) {
  const auto model = test::fixture("qalign-tiny/model");
  const auto img = input_path("qalign-tiny", "img_wide.png");
  // fp8 needs a Hopper GPU, whatever the activations' dtype.
  auto out = failure_of("score --model " + model + " --dtype bfloat16 --quantize fp8 " + img);
  EXPECT_NE(out.find("--quantize"), std::string::npos) << out;
  EXPECT_NE(out.find("needs a Hopper GPU"), std::string::npos) << out;
  // Groups of 128 do not divide the fixture's 64-wide inputs: the first such layer is named.
  for (const auto& dtype : {"float32", "bfloat16"}) {
    out = failure_of("score --model " + model + " --dtype " + dtype + " --quantize int4 --group-size 128 " + img);
    EXPECT_NE(out.find("--group-size"), std::string::npos) << dtype << "\n" << out;
    EXPECT_NE(out.find("does not divide the input width 64 of model.layers.0.self_attn.q_proj"), std::string::npos)
        << dtype << "\n"
        << out;
  }
  const test::ScratchDir dir("qalign-modes-bad");
  test::write_file(dir.file("set.json"),
                   R"([{"image": "img_wide.png", "gt_score": 3.5}, {"image": "img_tall.jpg", "gt_score": 1.5}])");
  out = failure_of("eval --model " + model + " --data " + dir.file("set.json") + " --image-folder " +
                   test::fixture("qalign-tiny/inputs") + " --out " + dir.file("out") +
                   " --quantize int4 --group-size 128");
  EXPECT_NE(out.find("--group-size"), std::string::npos) << out;
  EXPECT_NE(out.find("model.layers.0.self_attn.q_proj"), std::string::npos) << out;
}

}  // namespace quantize_modes
