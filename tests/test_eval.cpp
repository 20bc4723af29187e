// qalign eval on the tiny fixture model: the report files, per-item scores equal to qalign
// score's, metrics equal to a direct computation, and an interrupted run resuming without
// rescoring what it already has.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "qalign/base/atomic_file.h"
#include "qalign/io/csv.h"
#include "qalign/metrics.h"
#include "tests/support/fixtures.h"

using namespace qalign;
namespace fs = std::filesystem;

namespace {

struct Workspace {
  std::string dir, a, b;
};

// Two test files in two of the authors' shapes: {"image", "gt_score"} and {"img_path",
// "gt_score" as a string}, the first with a video and a path listed twice.
const Workspace& workspace() {
  static const Workspace w = [] {
    Workspace w;
    static const test::ScratchDir scratch("qalign-eval");
    w.dir = scratch.path();
    w.a = w.dir + "/set_a.json";
    w.b = w.dir + "/set_b.json";
    std::ofstream(w.a) << R"([{"image": "img_wide.png", "gt_score": 3.5},
      {"image": "img_tall.jpg", "gt_score": 1.25},
      {"image": "img_big.png", "gt_score": 4.0},
      {"image": "video.avi", "gt_score": 2.0},
      {"image": "img_wide.png", "gt_score": 3.0}])";
    std::ofstream(w.b) << R"([{"img_path": "img_big.png", "gt_score": "70.5"},
      {"img_path": "img_tall.jpg", "gt_score": "20"},
      {"img_path": "img_wide.png", "gt_score": "55.25"}])";
    return w;
  }();
  return w;
}

std::string eval_command(const std::string& out, const std::string& extra = "") {
  const auto& w = workspace();
  return test::qalign_binary() + " eval --model " + test::fixture("qalign-tiny/model") + " --data " + w.a + "," + w.b +
         " --image-folder " + test::fixture("qalign-tiny/inputs") + " --batch-size 2 --out " + out + " " + extra;
}

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::vector<nlohmann::json> rows;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

// (dataset, index) -> row
std::map<std::pair<std::string, int>, nlohmann::json> by_key(const std::vector<nlohmann::json>& rows) {
  std::map<std::pair<std::string, int>, nlohmann::json> m;
  for (const auto& r : rows) m[{r["dataset"].get<std::string>(), r["index"].get<int>()}] = r;
  return m;
}

}  // namespace

// RFC 4180: a field with a comma, quote, CR or LF is quoted, inner quotes doubled; others as is.
TEST(Csv, FieldsAreQuotedOnlyWhenTheyMustBe) {
  EXPECT_EQ(io::csv_field("plain/path.png"), "plain/path.png");
  EXPECT_EQ(io::csv_field("a,b.png"), "\"a,b.png\"");
  EXPECT_EQ(io::csv_field("say \"hi\".png"), "\"say \"\"hi\"\".png\"");
  EXPECT_EQ(io::csv_field("line\rbreak.png"), "\"line\rbreak.png\"");
  EXPECT_EQ(io::csv_field("line\nbreak.png"), "\"line\nbreak.png\"");
  EXPECT_EQ(io::csv_field(""), "");
}

TEST(EvalCli, WritesResultsPredictionsAndTable) {
  const std::string out = workspace().dir + "/run";
  std::string log;
  ASSERT_EQ(test::run_command(eval_command(out), &log), 0) << log;

  const auto results = nlohmann::json::parse(std::ifstream(out + "/results.json"));
  ASSERT_TRUE(results.contains("set_a") && results.contains("set_b")) << results.dump();
  EXPECT_EQ(results["set_a"]["n"], 5);
  EXPECT_EQ(results["set_b"]["n"], 3);
  for (const char* k : {"n", "srcc", "plcc", "krcc", "plcc_logistic", "rmse_logistic"})
    EXPECT_TRUE(results["set_a"].contains(k)) << k;

  const auto rows = read_jsonl(out + "/predictions.jsonl");
  ASSERT_EQ(rows.size(), 8u);
  for (const auto& r : rows) {
    for (const char* k : {"dataset", "image", "gt_score", "score", "score01"}) EXPECT_TRUE(r.contains(k)) << k;
    EXPECT_NEAR(r["score"].get<double>(), 1 + 4 * r["score01"].get<double>(), 1e-5);
  }
  const auto rows_by_key = by_key(rows);
  EXPECT_EQ(rows_by_key.at({"set_b", 0})["gt_score"], 70.5);  // string gt_score read as a number
  EXPECT_EQ(rows_by_key.at({"set_a", 3})["image"], "video.avi");

  // The metrics are those of the written predictions.
  for (const std::string set : {"set_a", "set_b"}) {
    std::vector<double> pred, gt;
    for (const auto& r : rows)
      if (r["dataset"] == set) {
        pred.push_back(r["score"]);
        gt.push_back(r["gt_score"]);
      }
    const auto a = metrics::agreement(pred, gt);
    EXPECT_NEAR(results[set]["srcc"].get<double>(), a.srcc, 1e-12) << set;
    EXPECT_NEAR(results[set]["plcc"].get<double>(), a.plcc, 1e-12) << set;
    EXPECT_NEAR(results[set]["krcc"].get<double>(), a.krcc, 1e-12) << set;
    EXPECT_NEAR(results[set]["rmse_logistic"].get<double>(), a.rmse_logistic, 1e-9) << set;
  }

  std::ifstream csv(out + "/predictions.csv");
  std::string header, line;
  std::getline(csv, header);
  EXPECT_EQ(header, "dataset,index,image,gt_score,score,score01");
  size_t lines = 0;
  while (std::getline(csv, line)) lines += !line.empty();
  EXPECT_EQ(lines, 8u);
  const auto md = io::read_file(out + "/results.md");
  EXPECT_NE(md.find("| dataset | n | SRCC | PLCC | KRCC |"), std::string::npos) << md;
  EXPECT_NE(md.find("| set_a | 5 |"), std::string::npos) << md;
}

TEST(EvalCli, ItemScoresEqualQalignScoreWithTheEvalPrompt) {
  const std::string out = workspace().dir + "/same";
  std::string log;
  ASSERT_EQ(test::run_command(eval_command(out), &log), 0) << log;
  const auto in = test::fixture("qalign-tiny/inputs/");
  ASSERT_EQ(test::run_command(test::qalign_binary() + " score --json --prompt eval --model " +
                                  test::fixture("qalign-tiny/model") + " " + in + "img_wide.png " + in +
                                  "img_tall.jpg " + in + "img_big.png " + in + "video.avi",
                              &log),
            0)
      << log;
  std::map<std::string, double> score;
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);)
    if (!line.empty() && line[0] == '{') {
      const auto j = nlohmann::json::parse(line);
      score[fs::path(j["input"].get<std::string>()).filename().string()] = j["score"].get<double>();
    }
  ASSERT_EQ(score.size(), 4u) << log;
  for (const auto& r : read_jsonl(out + "/predictions.jsonl"))
    EXPECT_NEAR(r["score"].get<double>(), score.at(r["image"].get<std::string>()), 1e-6) << r.dump();
}

TEST(EvalCli, ResumesWithoutRescoringDoneItems) {
  const std::string out = workspace().dir + "/resume";
  std::string log;
  ASSERT_EQ(test::run_command(eval_command(out), &log), 0) << log;
  const auto full = read_jsonl(out + "/predictions.jsonl");

  // An interrupted run: three rows done (one marked so a rescoring would show), a torn fourth.
  std::string partial;
  for (size_t i = 0; i < 3; ++i) {
    auto r = full[i];
    if (i == 1) r["score"] = 9.0;
    partial += r.dump() + "\n";
  }
  partial += full[3].dump().substr(0, 20);
  io::write_file_atomic(out + "/predictions.jsonl", partial);

  ASSERT_EQ(test::run_command(eval_command(out), &log), 0) << log;
  EXPECT_NE(log.find("resuming: 3 items"), std::string::npos) << log;
  const auto resumed = read_jsonl(out + "/predictions.jsonl");
  ASSERT_EQ(resumed.size(), full.size());
  const auto before = by_key(full), after = by_key(resumed);
  ASSERT_EQ(after.size(), before.size());
  for (const auto& [key, row] : before) {
    const double expected = key == std::make_pair(full[1]["dataset"].get<std::string>(), full[1]["index"].get<int>())
                                ? 9.0
                                : row["score"].get<double>();
    EXPECT_NEAR(after.at(key)["score"].get<double>(), expected, 1e-12) << key.first << "[" << key.second << "]";
  }
}

TEST(EvalCli, LowerIsBetterReportsMagnitudes) {
  std::string log;
  const std::string up = workspace().dir + "/higher", down = workspace().dir + "/lower";
  ASSERT_EQ(test::run_command(eval_command(up), &log), 0) << log;
  ASSERT_EQ(test::run_command(eval_command(down, "--lower-is-better"), &log), 0) << log;
  const auto a = nlohmann::json::parse(std::ifstream(up + "/results.json"))["set_a"];
  const auto b = nlohmann::json::parse(std::ifstream(down + "/results.json"))["set_a"];
  for (const char* k : {"srcc", "plcc", "krcc"}) EXPECT_DOUBLE_EQ(b[k].get<double>(), -a[k].get<double>()) << k;
  EXPECT_DOUBLE_EQ(b["plcc_logistic"].get<double>(), a["plcc_logistic"].get<double>());
}

TEST(EvalCli, BadInputsFailWithTheirNames) {
  std::string log;
  const std::string bad = workspace().dir + "/bad.json";
  std::ofstream(bad) << R"([{"image": "img_wide.png"}])";
  EXPECT_NE(test::run_command(test::qalign_binary() + " eval --model " + test::fixture("qalign-tiny/model") +
                                  " --data " + bad + " --out " + workspace().dir + "/bad_out",
                              &log),
            0);
  EXPECT_NE(log.find("bad.json"), std::string::npos) << log;
}
