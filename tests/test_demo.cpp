// The demo's commands: make-data writes a split by photograph with labels through the syllabus,
// init writes a loadable seeded model, plot draws a run's metrics.jsonl.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <set>
#include <sstream>

#include "qalign/io/weights.h"
#include "qalign/syllabus.h"
#include "tests/support/fixtures.h"

namespace qalign {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const char* kPhotos = "/usr/share/doc/opencv-doc/examples/data/baboon.jpg";

std::string run(const std::string& args, int* rc) {
  std::string out;
  *rc = test::run_command(test::qalign_binary() + " " + args, &out);
  return out;
}

TEST(DemoCli, MakeDataSplitsByPhotographAndLabelsBySyllabus) {
  if (!fs::exists(kPhotos)) GTEST_SKIP() << "opencv-doc is not installed (scripts/setup.sh installs it)";
  test::ScratchDir tmp("qalign-demo");
  int rc = 0;
  const auto log =
      run("demo make-data --out " + tmp.path() + " --size 48 --per-image 6 --test-per-image 3 --seed 3", &rc);
  ASSERT_EQ(rc, 0) << log;
  const auto manifest = json::parse(std::ifstream(tmp.file("manifest.json")));
  std::set<std::string> train_sources, test_sources;
  std::map<std::string, double> mos;
  for (const auto& it : manifest["items"]) {
    (it["split"] == "train" ? train_sources : test_sources).insert(it["source"].get<std::string>());
    EXPECT_NEAR(it["mos"].get<double>(), 5 - 4 * it["strength"].get<double>(), 1e-3);
    mos[it["image"].get<std::string>()] = it["mos"].get<double>();
    const cv::Mat img = cv::imread(tmp.file(it["image"].get<std::string>()));
    EXPECT_EQ(img.cols, 48);
    EXPECT_EQ(img.rows, 48);
  }
  std::set<std::string> types;
  for (const auto& it : manifest["items"]) types.insert(it["distortion"].get<std::string>());
  EXPECT_EQ(types, (std::set<std::string>{"blur", "noise", "jpeg", "contrast", "color_shift"}));
  for (const auto& s : test_sources) EXPECT_EQ(train_sources.count(s), 0u) << s << " is in both splits";
  EXPECT_FALSE(test_sources.empty());

  const Syllabus syllabus({1.0, 5.0}, OutOfRange::kClamp, "test");
  const auto train = json::parse(std::ifstream(tmp.file("train.json")));
  EXPECT_EQ(train.size(), 6 * train_sources.size());
  for (const auto& r : train) {
    const std::string answer = r["conversations"][1]["value"];
    const std::string word = level_word(syllabus.level(mos.at(r["image"].get<std::string>())).value());
    EXPECT_NE(answer.find(word), std::string::npos) << answer;
  }
  // The ablation's numeric answers: the same conversations, the MOS of the id written with two decimals.
  const auto numbers = json::parse(std::ifstream(tmp.file("train_numbers.json")));
  ASSERT_EQ(numbers.size(), train.size());
  for (size_t i = 0; i < numbers.size(); ++i) {
    EXPECT_EQ(numbers[i]["conversations"][0], train[i]["conversations"][0]);
    char text[16];
    std::snprintf(text, sizeof text, "%.2f", mos.at(numbers[i]["image"].get<std::string>()));
    EXPECT_EQ(numbers[i]["conversations"][1]["value"].get<std::string>(),
              std::string("The quality of the image is ") + text + ".");
  }
  const auto test_set = json::parse(std::ifstream(tmp.file("test.json")));
  EXPECT_EQ(test_set.size(), 3 * test_sources.size());
  EXPECT_TRUE(fs::exists(tmp.file("tokenizer/tokenizer.model")));

  const auto bad = run("demo make-data --out " + tmp.file("bad") + " --size 48 --distortions blur,sharpen", &rc);
  EXPECT_NE(rc, 0);
  EXPECT_NE(bad.find("--distortions"), std::string::npos) << bad;
  EXPECT_NE(bad.find("sharpen"), std::string::npos) << bad;
  const auto small = run("demo make-data --out " + tmp.file("bad") + " --size 48 --scene 40", &rc);
  EXPECT_NE(rc, 0);
  EXPECT_NE(small.find("--scene"), std::string::npos) << small;

  const auto init_log = run("init --config " + test::source_dir() + "/configs/demo_model.json --tokenizer " +
                                tmp.file("tokenizer") + " --out " + tmp.file("init") + " --seed 5",
                            &rc);
  ASSERT_EQ(rc, 0) << init_log;
  const auto a = io::load_pretrained(tmp.file("init"));
  run("init --config " + test::source_dir() + "/configs/demo_model.json --tokenizer " + tmp.file("tokenizer") +
          " --out " + tmp.file("init2") + " --seed 5",
      &rc);
  const auto b = io::load_pretrained(tmp.file("init2"));
  for (const auto& [name, t] : io::state_dict(*a)) EXPECT_TRUE(torch::equal(t, io::state_dict(*b).at(name))) << name;

  // The report: SRCC per type over exactly the held-out pictures, and the sheet of 3 + 3 tiles.
  const auto report = run("demo report --model " + tmp.file("init") + " --data " + tmp.path() + " --sheet " +
                              tmp.file("sheet.png") + " --count 3",
                          &rc);
  ASSERT_EQ(rc, 0) << report;
  std::map<std::string, int> pictures;
  std::istringstream rows(report);
  for (std::string line; std::getline(rows, line);) {
    char type[32];
    int n = 0;
    char srcc[32];
    if (std::sscanf(line.c_str(), "| %31s | %d | %31s |", type, &n, srcc) != 3) continue;
    pictures[type] = n;
    if (std::string(srcc) != "undefined") {
      EXPECT_GE(std::stod(srcc), -1.0) << line;
      EXPECT_LE(std::stod(srcc), 1.0) << line;
    }
  }
  std::set<std::string> test_types;
  for (const auto& it : manifest["items"])
    if (it["split"] == "test") test_types.insert(it["distortion"].get<std::string>());
  EXPECT_EQ(pictures.size(), test_types.size() + 1) << report;  // each type and all
  EXPECT_EQ(pictures["all"], static_cast<int>(test_set.size())) << report;
  int per_type = 0;
  for (const auto& [type, n] : pictures) per_type += type == "all" ? 0 : n;
  EXPECT_EQ(per_type, pictures["all"]);
  const cv::Mat sheet = cv::imread(tmp.file("sheet.png"));
  EXPECT_EQ(sheet.cols, 3 * (192 + 8) + 8);
  EXPECT_EQ(sheet.rows, 2 * (28 + 192 + 44) + 8);
  // The photographs' list with packages and licences, one row per photograph used.
  const std::string readme = test::read_file(tmp.file("README.md"));
  size_t listed = 0;
  for (const char* split : {"\n| train |", "\n| test |"})
    for (size_t at = readme.find(split); at != std::string::npos; at = readme.find(split, at + 1)) ++listed;
  EXPECT_EQ(listed, train_sources.size() + test_sources.size());
  EXPECT_NE(
      readme.find("| opencv-doc | `/usr/share/doc/opencv-doc/examples/data/baboon.jpg` | Apache-2.0 AND BSD-3-Clause"),
      std::string::npos);

  // Each part is drawn at its config's initializer_range; biases zero, norms one.
  auto config = json::parse(std::ifstream(test::source_dir() + "/configs/demo_model.json"));
  config["visual_config"]["visual_model"]["initializer_range"] = 0.2;
  config["visual_config"]["visual_abstractor"]["initializer_range"] = 0.03;
  config["initializer_range"] = 0.05;
  std::ofstream(tmp.file("ranges.json")) << config.dump();
  ASSERT_EQ(test::run_command(test::qalign_binary() + " init --config " + tmp.file("ranges.json") + " --tokenizer " +
                                  tmp.file("tokenizer") + " --out " + tmp.file("init3"),
                              nullptr),
            0);
  const auto c = io::state_dict(*io::load_pretrained(tmp.file("init3")));
  auto std_of = [&](const std::string& name) { return c.at(name).std().item<double>(); };
  EXPECT_NEAR(std_of("model.vision_model.encoder.layers.0.mlp.fc1.weight"), 0.2, 0.01);
  EXPECT_NEAR(std_of("model.visual_abstractor.encoder.layers.0.crossattention.attention.query.weight"), 0.03, 0.003);
  EXPECT_NEAR(std_of("model.layers.0.mlp.gate_proj.weight"), 0.05, 0.003);
  EXPECT_EQ(c.at("model.vision_model.encoder.layers.0.mlp.fc1.bias").abs().max().item<double>(), 0.0);
  EXPECT_TRUE(torch::equal(c.at("model.norm.weight"), torch::ones_like(c.at("model.norm.weight"))));
  config["visual_config"]["visual_model"]["initializer_range"] = "wide";
  std::ofstream(tmp.file("bad.json")) << config.dump();
  std::string out;
  EXPECT_NE(test::run_command(test::qalign_binary() + " init --config " + tmp.file("bad.json") + " --tokenizer " +
                                  tmp.file("tokenizer") + " --out " + tmp.file("init4"),
                              &out),
            0);
  EXPECT_NE(out.find("visual_config.visual_model.initializer_range"), std::string::npos) << out;
}

// With the demo's packages installed (scripts/setup.sh --demo): photographs from Qt resource
// archives and plain files, and photographs of one subject never on both sides of the split.
TEST(DemoCli, MakeDataKeepsEachSubjectOnOneSide) {
  if (!fs::exists("/usr/share/gcompris-qt/rcc/erase.rcc"))
    GTEST_SKIP() << "gcompris-qt-data is not installed (scripts/setup.sh --demo installs it; the tests do not need it)";
  test::ScratchDir tmp("qalign-demo-subjects");
  int rc = 0;
  const auto log = run(
      "demo make-data --out " + tmp.path() + " --size 32 --scene 32 --per-image 1 --test-per-image 1 --seed 1", &rc);
  ASSERT_EQ(rc, 0) << log;
  const auto manifest = json::parse(std::ifstream(tmp.file("manifest.json")));
  std::map<std::string, std::set<std::string>> sides;  // subject -> splits
  for (const auto& p : manifest["photos"]) sides[p["subject"].get<std::string>()].insert(p["split"].get<std::string>());
  std::set<std::string> names;
  for (const auto& p : manifest["photos"]) names.insert(p["name"].get<std::string>());
  for (const auto& it : manifest["items"]) EXPECT_EQ(names.count(it["source"].get<std::string>()), 1u);
  EXPECT_GE(manifest["train_photos"].size() + manifest["test_photos"].size(), 169u);
  EXPECT_GE(manifest["train_photos"].size(), 100u);
  for (const auto& subject : {"giraffe", "chameleon", "taj-mahal", "chenonceau", "cat"})
    EXPECT_EQ(sides[subject].size(), 1u) << subject;
  for (const auto& [subject, splits] : sides) EXPECT_EQ(splits.size(), 1u) << subject;
  EXPECT_TRUE(fs::exists(tmp.file("sources/giraffe-1.webp")));
}

TEST(DemoCli, InitFromAPresetWritesThatSize) {
  test::ScratchDir tmp("qalign-init-preset");
  int rc = 0;
  const auto tokenizer = test::fixture("qalign-tiny/model");
  const auto log = run("init --preset tiny --tokenizer " + tokenizer + " --out " + tmp.file("m"), &rc);
  ASSERT_EQ(rc, 0) << log;
  const auto m = io::load_pretrained(tmp.file("m"));
  EXPECT_EQ(m->config.hidden_size, 64);
  EXPECT_EQ(m->config.vision.image_size, 56);
  EXPECT_NE(run("init --preset tiny --config x.json --tokenizer " + tokenizer + " --out " + tmp.file("n"), &rc)
                .find("excludes"),
            std::string::npos);
  EXPECT_NE(rc, 0);
  EXPECT_NE(run("init --preset huge --tokenizer " + tokenizer + " --out " + tmp.file("n"), &rc)
                .find("unknown preset \"huge\""),
            std::string::npos);
  EXPECT_NE(run("init --tokenizer " + tokenizer + " --out " + tmp.file("n"), &rc)
                .find("give a config.json, or --preset NAME"),
            std::string::npos);
}

TEST(DemoCli, PlotDrawsLossAndEvaluationFromMetrics) {
  test::ScratchDir tmp("qalign-plot");
  std::ofstream(tmp.file("metrics.jsonl")) << R"({"step": 5, "epoch": 0.1, "loss": 2.5}
{"step": 10, "epoch": 0.2, "loss": 1.5}
{"step": 10, "epoch": 0.2, "eval_test_n": 8, "eval_test_srcc": 0.4}
{"step": 20, "epoch": 0.4, "loss": 0.5}
{"step": 20, "epoch": 0.4, "eval_test_n": 8, "eval_test_srcc": 0.9}
)";
  int rc = 0;
  const auto log = run("demo plot --metrics " + tmp.file("metrics.jsonl") + " --out " + tmp.file("plot.png"), &rc);
  ASSERT_EQ(rc, 0) << log;
  EXPECT_NE(log.find("3 logged steps, 2 evaluations"), std::string::npos) << log;
  const cv::Mat img = cv::imread(tmp.file("plot.png"));
  ASSERT_FALSE(img.empty());
  EXPECT_EQ(img.cols, 960);
  // The loss on a log axis from 0.1 to 10 (420 px tall from y 56): the last point, 0.5 at the
  // right edge (x 880), sits at y 476 - 420 * (log10 0.5 + 1) / 2 = 329; a linear axis puts it at 396.
  const cv::Vec3b last = img.at<cv::Vec3b>(329, 878), linear = img.at<cv::Vec3b>(396, 878);
  EXPECT_GT(last[0], 120);
  EXPECT_LT(last[2], 100);
  EXPECT_GT(linear[2], 200);

  std::ofstream(tmp.file("bad.jsonl")) << "{\"epoch\": 1}\n";
  const auto bad = run("demo plot --metrics " + tmp.file("bad.jsonl") + " --out " + tmp.file("bad.png"), &rc);
  EXPECT_NE(rc, 0);
  EXPECT_NE(bad.find("bad.jsonl"), std::string::npos) << bad;
}

}  // namespace
}  // namespace qalign
