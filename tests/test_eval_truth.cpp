// Truth in results (issue 20), through the real command: an evaluation folder resumes only its
// own job (model and its weights, task, prompt, readout), a NaN-weights model's scores are
// per-item errors rather than numbers, and metrics are refused for fewer than two items.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "tests/support/fixtures.h"

using namespace qalign;
namespace fs = std::filesystem;

namespace {

// As qalign, run from the source folder, records a path.
std::string absolute(const std::string& path) {
  return fs::weakly_canonical(fs::absolute(fs::path(test::source_dir()) / path)).string();
}

// Copies the fixture model to `dir` (without the .bin, so the safetensors are what loads).
std::string copy_model(const std::string& dir) {
  fs::copy(test::source_dir() + "/" + test::kTinyModel, dir, fs::copy_options::recursive);
  fs::remove(dir + "/pytorch_model.bin");
  return dir;
}

// Rewrites every float32 of `tensor` in dir/model.safetensors with `edit`.
void edit_tensor(const std::string& dir, const std::string& tensor, const std::function<float(float)>& edit) {
  const std::string path = dir + "/model.safetensors";
  auto bytes = test::read_file(path);
  uint64_t header = 0;
  std::memcpy(&header, bytes.data(), 8);
  const auto meta = nlohmann::json::parse(bytes.substr(8, header));
  ASSERT_EQ(meta.at(tensor)["dtype"], "F32");
  const auto begin = meta.at(tensor)["data_offsets"][0].get<size_t>(),
             end = meta.at(tensor)["data_offsets"][1].get<size_t>();
  for (size_t at = 8 + header + begin; at < 8 + header + end; at += 4) {
    float v;
    std::memcpy(&v, bytes.data() + at, 4);
    v = edit(v);
    std::memcpy(bytes.data() + at, &v, 4);
  }
  test::write_file(path, bytes);
}

// The final norm's weights negated: the same architecture, other scores.
void negate_final_norm(const std::string& dir) {
  edit_tensor(dir, "model.norm.weight", [](float v) { return -v; });
}

// NaN (0x7fc00000) in the final norm: every logit, so every level probability, is NaN.
void nan_final_norm(const std::string& dir) {
  edit_tensor(dir, "model.norm.weight", [](float) {
    const uint32_t bits = 0x7fc00000;
    float v;
    std::memcpy(&v, &bits, 4);
    return v;
  });
}

// A labelled set on the fixture photographs, its scores distinct per image.
std::string write_set(const test::ScratchDir& d, const std::string& name = "set.json") {
  test::write_file(d.file(name),
                   R"([{"image": "img_wide.png", "gt_score": 3.5}, {"image": "img_tall.jpg", "gt_score": 1.25},
    {"image": "img_big.png", "gt_score": 4.0}, {"image": "img_wide.png", "gt_score": 2.0}])");
  return d.file(name);
}

test::Measured eval(const std::string& model, const std::string& data, const std::string& out,
                    const std::string& extra = "") {
  return test::run_qalign_measured("eval --model " + model + " --data " + data + " --image-folder " +
                                   test::kTinyInputs + " --batch-size 2 --out " + out + " " + extra);
}

std::vector<double> scores(const std::string& out) {
  std::vector<double> s;
  std::ifstream in(out + "/predictions.jsonl");
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) s.push_back(nlohmann::json::parse(line)["score"].get<double>());
  return s;
}

nlohmann::json results(const std::string& out) { return nlohmann::json::parse(std::ifstream(out + "/results.json")); }

}  // namespace

TEST(EvalTruth, AnotherModelIsRefusedAndOverwriteGivesItsOwnNumbers) {
  const test::ScratchDir d("qalign-truth");
  const auto set = write_set(d), folder = d.file("D"), fresh = d.file("E");
  const auto b = copy_model(d.file("B"));
  negate_final_norm(b);

  ASSERT_EQ(eval(test::kTinyModel, set, folder).exit_code, 0);
  const auto a_rows = test::read_file(folder + "/predictions.jsonl");
  const auto refused = eval(b, set, folder);
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  EXPECT_TRUE(test::output_has(refused, folder + ": holds an evaluation of model " + absolute(test::kTinyModel) +
                                            "; this run is model " + absolute(b) + "; add --overwrite to start " +
                                            folder + " fresh"))
      << refused.output;
  EXPECT_EQ(test::read_file(folder + "/predictions.jsonl"), a_rows);  // A's evaluation is left as it was

  const auto own = eval(b, set, fresh);
  ASSERT_EQ(own.exit_code, 0) << own.output;
  ASSERT_EQ(scores(fresh).size(), 4u);
  EXPECT_GT(std::abs(scores(fresh)[0] - scores(folder)[0]), 1e-3) << "B must score differently from A";

  const auto over = eval(b, set, folder, "--overwrite");
  ASSERT_EQ(over.exit_code, 0) << over.output;
  EXPECT_FALSE(test::output_has(over, "resuming")) << over.output;
  EXPECT_EQ(scores(folder), scores(fresh));
  EXPECT_EQ(results(folder), results(fresh));
}

TEST(EvalTruth, SameJobResumesButRewrittenWeightsAreRefused) {
  const test::ScratchDir d("qalign-truth");
  const auto set = write_set(d), folder = d.file("D");
  const auto m = copy_model(d.file("M"));
  ASSERT_EQ(eval(m, set, folder).exit_code, 0);
  const auto again = eval(m, set, folder);
  EXPECT_EQ(again.exit_code, 0) << again.output;
  EXPECT_TRUE(test::output_has(again, "resuming: 4 items")) << again.output;

  negate_final_norm(m);  // new weights at the same path
  const auto refused = eval(m, set, folder);
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  EXPECT_TRUE(test::output_has(refused, folder + ": holds an evaluation of model weights model.safetensors ("))
      << refused.output;
  EXPECT_TRUE(test::output_has(refused, "; this run is model weights model.safetensors (")) << refused.output;
  EXPECT_TRUE(test::output_has(refused, "add --overwrite")) << refused.output;
}

TEST(EvalTruth, TaskPromptAndReadoutChangesAreRefused) {
  const test::ScratchDir d("qalign-truth");
  const auto set = write_set(d), folder = d.file("D");
  ASSERT_EQ(eval(test::kTinyModel, set, folder).exit_code, 0);
  const std::vector<std::pair<std::string, std::string>> changes = {
      {"--task aesthetics", "holds an evaluation of task quality; this run is task aesthetics"},
      {"--prompt scorer", "holds an evaluation of prompt eval; this run is prompt scorer"},
      {"--readout number", "holds an evaluation of readout levels; this run is readout number"},
      {"--task aesthetics --readout number",
       "holds an evaluation of task quality, readout levels; this run is task aesthetics, readout number"}};
  for (const auto& [flags, message] : changes) {
    const auto r = eval(test::kTinyModel, set, folder, flags);
    EXPECT_EQ(r.exit_code, 1) << flags << "\n" << r.output;
    EXPECT_TRUE(test::output_has(r, folder + ": " + message)) << flags << "\n" << r.output;
  }
}

TEST(EvalTruth, FolderWithOtherFilesIsRefusedEvenWithOverwrite) {
  const test::ScratchDir d("qalign-truth");
  const auto set = write_set(d), folder = d.file("D");
  fs::create_directories(folder);
  test::write_file(folder + "/notes.txt", "mine\n");
  for (const std::string flags : {"", "--overwrite"}) {
    const auto r = eval(test::kTinyModel, set, folder, flags);
    EXPECT_EQ(r.exit_code, 1) << flags << "\n" << r.output;
    EXPECT_TRUE(test::output_has(r, folder + ": holds files qalign eval did not write (notes.txt)")) << r.output;
  }
  EXPECT_EQ(test::read_file(folder + "/notes.txt"), "mine\n");
  EXPECT_FALSE(fs::exists(folder + "/predictions.jsonl"));
}

TEST(EvalTruth, NanWeightsAreErrorsPerItemInScore) {
  const test::ScratchDir d("qalign-truth");
  const auto m = copy_model(d.file("nan"));
  nan_final_norm(m);
  const auto wide = test::kTinyInputs + "/img_wide.png", tall = test::kTinyInputs + "/img_tall.jpg",
             out = d.file("rows.jsonl");
  const auto r = test::run_qalign_measured("score --model " + m + " --out " + out + " " + wide + " " + tall);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(test::output_has(r, "2 of 2 inputs could not be scored")) << r.output;
  std::ifstream in(out);
  size_t rows = 0;
  for (std::string line; std::getline(in, line); ++rows) {
    const auto row = nlohmann::json::parse(line);
    EXPECT_TRUE(row["score"].is_null() && row["level"].is_null() && row["probs"].is_null()) << line;
    const auto input = row["input"].get<std::string>();
    EXPECT_EQ(row["error"], input +
                                ": score: the model gave NaN, not a finite score "
                                "(its weights or activations hold NaN or Inf)");
  }
  EXPECT_EQ(rows, 2u);
  // Rows on stdout, as the issue ran it: the same errors, and the exit code says so.
  const auto plain = test::run_qalign_measured("score --model " + m + " " + wide + " " + tall);
  EXPECT_EQ(plain.exit_code, 1) << plain.output;
  EXPECT_TRUE(test::output_has(plain, wide + ": score: the model gave NaN")) << plain.output;
  EXPECT_TRUE(test::output_has(plain, "2 of 2 inputs could not be scored")) << plain.output;
}

TEST(EvalTruth, NanWeightsGiveNoMetrics) {
  const test::ScratchDir d("qalign-truth");
  const auto set = write_set(d), folder = d.file("D");
  const auto m = copy_model(d.file("nan"));
  nan_final_norm(m);
  for (const std::string readout : {"levels", "number"}) {
    const auto r = eval(m, set, folder + readout, "--readout " + readout);
    EXPECT_EQ(r.exit_code, 1) << readout << "\n" << r.output;
    EXPECT_TRUE(test::output_has(r, test::kTinyInputs + "/img_tall.jpg: score: the model gave NaN")) << r.output;
    EXPECT_TRUE(test::output_has(
        r, set + ": 0 of 4 items could be scored (each failure is logged above); SRCC and PLCC need at "
                 "least two"))
        << r.output;
    EXPECT_FALSE(fs::exists(folder + readout + "/results.json"));
  }
}

TEST(EvalTruth, FewerThanTwoItemsAreRefused) {
  const test::ScratchDir d("qalign-truth");
  test::write_file(d.file("none.json"), "[]");
  test::write_file(d.file("one.json"), R"([{"image": "img_wide.png", "gt_score": 3.5}])");
  test::write_file(d.file("half.json"),
                   R"([{"image": "img_wide.png", "gt_score": 3.5}, {"image": "gone.png", "gt_score": 2}])");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"none.json", ": holds 0 items; SRCC and PLCC need at least two"},
      {"one.json", ": holds 1 item; SRCC and PLCC need at least two"},
      {"half.json", ": 1 of 2 items could be scored (each failure is logged above); SRCC and PLCC need at least two"}};
  for (const auto& [file, message] : cases) {
    const auto r = eval(test::kTinyModel, d.file(file), d.file("out-" + file));
    EXPECT_EQ(r.exit_code, 1) << file << "\n" << r.output;
    EXPECT_TRUE(test::output_has(r, d.file(file) + message)) << r.output;
    EXPECT_FALSE(fs::exists(d.file("out-" + file) + "/results.json")) << file;
  }
  EXPECT_FALSE(fs::exists(d.file("out-one.json"))) << "refused before any folder or model time";
}

TEST(EvalTruth, ConstantPredictionsAreReportedUndefined) {
  const test::ScratchDir d("qalign-truth");
  // One rating for two pictures (a constant prediction is the same case; the model's two rows of
  // one picture in a batch may differ in the last bit, so the ratings are what is held fixed).
  test::write_file(d.file("same.json"),
                   R"([{"image": "img_wide.png", "gt_score": 3.5}, {"image": "img_tall.jpg", "gt_score": 3.5}])");
  const auto r = eval(test::kTinyModel, d.file("same.json"), d.file("D"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(test::output_has(
      r, "same: SRCC, PLCC and KRCC are undefined (null in results.json): every ground-truth score is 3.5"))
      << r.output;
  const auto res = results(d.file("D"))["same"];
  EXPECT_TRUE(res["srcc"].is_null() && res["plcc"].is_null() && res["krcc"].is_null()) << res.dump();
  EXPECT_EQ(res["undefined"], "every ground-truth score is 3.5") << res.dump();
  const auto md = test::read_file(d.file("D/results.md"));
  EXPECT_NE(md.find("| same | 2 | undefined | undefined | undefined |"), std::string::npos) << md;
  EXPECT_EQ(md.find("nan"), std::string::npos) << md;
}
