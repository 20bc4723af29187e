// From files to scores, end to end: `qalign score` and the Scorer against the authors' numbers
// on the tiny fixture and on real photographs and video at 448 px.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "data/preprocess.h"
#include "data/video.h"
#include "qalign/io/safetensors.h"
#include "qalign/io/weights.h"
#include "qalign/scorer.h"
#include "tests/support/fixtures.h"

using namespace qalign;

namespace {

struct Expected {
  std::vector<double> probs;
  double score5, score01;
};

// golden.json cases -> per-input expected numbers (row `row` of a case with several inputs).
Expected expected(const std::string& set, const std::string& c, size_t row) {
  const auto g = nlohmann::json::parse(std::ifstream(test::fixture(set + "/golden.json")))["cases"][c];
  return {g["level_probs"][row].get<std::vector<double>>(), g["score_model"][row].get<double>(),
          g["score_scorer"][row].get<double>()};
}

std::map<std::string, nlohmann::json> run_cli(const std::string& args) {
  std::string out;
  const int rc = test::run_command(test::qalign_binary() + " score --json " + args, &out);
  EXPECT_EQ(rc, 0) << out;
  std::map<std::string, nlohmann::json> rows;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty() && line[0] == '{') {
      const auto j = nlohmann::json::parse(line);
      rows[j["input"].get<std::string>()] = j;
    }
  return rows;
}

void expect_row(const nlohmann::json& row, const Expected& e) {
  for (size_t k = 0; k < kLevelWords.size(); ++k)
    EXPECT_NEAR(row["probs"][kLevelWords[k]].get<double>(), e.probs[k], 1e-5) << kLevelWords[k];
  EXPECT_NEAR(row["score"].get<double>(), e.score5, 1e-5);
  EXPECT_NEAR(row["score01"].get<double>(), e.score01, 1e-5);
}

}  // namespace

TEST(ScoreCli, TinyFixtureImagesAndVideoGiveTheGoldenScores) {
  const auto in = test::fixture("qalign-tiny/inputs/");
  const auto rows = run_cli("--model " + test::fixture("qalign-tiny/model") + " " + in + "img_wide.png " + in +
                            "img_tall.jpg " + in + "img_big.png " + in + "video.avi");
  ASSERT_EQ(rows.size(), 4u);
  expect_row(rows.at(in + "img_wide.png"), expected("qalign-tiny", "image.img_wide", 0));
  expect_row(rows.at(in + "img_tall.jpg"), expected("qalign-tiny", "image.img_tall", 0));
  expect_row(rows.at(in + "img_big.png"), expected("qalign-tiny", "image.img_big", 0));
  expect_row(rows.at(in + "video.avi"), expected("qalign-tiny", "video", 0));
  EXPECT_EQ(rows.at(in + "video.avi")["media"], "video");
  EXPECT_EQ(rows.at(in + "img_wide.png")["task"], "quality");
}

TEST(ScoreCli, AestheticsTask) {
  const auto in = test::fixture("qalign-tiny/inputs/img_wide.png");
  const auto rows = run_cli("--task aesthetics --model " + test::fixture("qalign-tiny/model") + " " + in);
  expect_row(rows.at(in), expected("qalign-tiny", "aesthetic.img_wide", 0));
}

TEST(ScoreCli, RealPhotosAndVideoAt448InOneBatch) {
  const auto in = test::fixture("qalign-448/inputs/");
  const auto rows = run_cli("--batch-size 3 --model " + test::fixture("qalign-448/model") + " " + in + "building.jpg " +
                            in + "baboon.jpg " + in + "smarties.png " + in + "megamind_3s.avi");
  ASSERT_EQ(rows.size(), 4u);
  expect_row(rows.at(in + "building.jpg"), expected("qalign-448", "batch3", 0));
  expect_row(rows.at(in + "baboon.jpg"), expected("qalign-448", "batch3", 1));
  expect_row(rows.at(in + "smarties.png"), expected("qalign-448", "batch3", 2));
  expect_row(rows.at(in + "building.jpg"), expected("qalign-448", "image.building", 0));
  expect_row(rows.at(in + "megamind_3s.avi"), expected("qalign-448", "video", 0));
}

TEST(ScoreCli, UnreadableInputIsReportedSkippedAndFailsTheRun) {
  const auto good = test::fixture("qalign-tiny/inputs/img_wide.png");
  std::string out;
  const int rc =
      test::run_command(test::qalign_binary() + " score --json --model " + test::fixture("qalign-tiny/model") +
                            " /nonexistent/photo.jpg " + test::fixture("qalign-tiny/MANIFEST.md") + " " + good,
                        &out);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("/nonexistent/photo.jpg"), std::string::npos) << out;
  EXPECT_NE(out.find("MANIFEST.md"), std::string::npos) << out;
  EXPECT_NE(out.find("\"input\":\"" + good + "\""), std::string::npos) << out;  // the good one is still scored
}

TEST(Scorer, VideosOfDifferentLengthsInOneBatchScoreAsAlone) {
  Scorer scorer(io::load_pretrained(test::fixture("qalign-tiny/model")), Tokenizer(test::fixture("qalign-tiny/model")));
  const auto video = data::load_video_tensor(test::fixture("qalign-tiny/inputs/video.avi"), scorer.image_size());
  const auto shorter = video.narrow(0, 0, 2);
  const auto both = scorer.score({video, shorter}, Task::kQuality, Media::kVideo);
  const auto alone_long = scorer.score({video}, Task::kQuality, Media::kVideo);
  const auto alone_short = scorer.score({shorter}, Task::kQuality, Media::kVideo);
  EXPECT_LE((both.probs[0] - alone_long.probs[0]).abs().max().item<double>(), 1e-5);
  EXPECT_LE((both.probs[1] - alone_short.probs[0]).abs().max().item<double>(), 1e-5);
  EXPECT_GT((alone_long.probs[0] - alone_short.probs[0]).abs().max().item<double>(), 1e-4);  // the lengths matter
}
