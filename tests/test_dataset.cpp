// Label-file readers (SPEC §11): the four test shapes, training records, malformed records,
// dataset mixing, and scored records turned into training records.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

#include "data/dataset_mix.h"
#include "data/dataset_sft.h"
#include "qalign/base/atomic_file.h"
#include "qalign/base/error.h"
#include "qalign/label_files.h"
#include "qalign/prompts.h"
#include "tests/support/fixtures.h"

namespace qalign::data {
namespace {

using nlohmann::json;

TEST(Dataset, FourTestShapes) {
  const json records = json::parse(R"([
    {"id": "10007357496.jpg->68.7285714286", "image": "koniq/10007357496.jpg",
     "conversations": [{"from": "human", "value": "Rate the quality of this image.\n<|image|>"},
                       {"from": "gpt", "value": "The quality of the image is good."}],
     "gt_score": 68.7285714286},
    {"id": "I66_01_01.png->4.63", "image": "kadid10k/I66_01_01.png",
     "conversations": [{"from": "human", "value": "x\n<|image|>"}, {"from": "gpt", "value": "y"}]},
    {"img_path": "agi-cgi/AttnGAN_normal_000.jpg", "gt_score": "0.965602553"},
    {"img_path": "livec/t1.bmp", "gt_score": 63.963406174124174},
    {"image": "live/jp2k/img2.bmp", "gt_score": 28.00384536},
    {"image": "ava_images/953980.jpg", "gt_score": 5},
    {"id": "lsvq/yfcc-batch1/722.mp4->78.7741935483871", "image": "lsvq/yfcc-batch1/722.mp4",
     "gt_score": 78.7741935483871, "std": "0.5"},
    {"img_path": "/abs/0000.MP4", "gt_score": 1.187}
  ])");
  const auto r = parse_scored_records(records, "test.json", "/data/root");
  ASSERT_EQ(r.size(), 8u);
  EXPECT_EQ(r[0].mos, 68.7285714286);
  EXPECT_EQ(r[0].mos_text, "68.7285714286");
  EXPECT_EQ(r[0].path, "/data/root/koniq/10007357496.jpg");
  EXPECT_EQ(r[1].mos, 4.63);  // KADID: only in the id
  EXPECT_EQ(r[1].mos_text, "4.63");
  EXPECT_EQ(r[2].image, "agi-cgi/AttnGAN_normal_000.jpg");  // img_path
  EXPECT_EQ(r[2].mos, 0.965602553);                         // AGIQA: a string
  EXPECT_EQ(r[2].mos_text, "0.965602553");
  EXPECT_EQ(r[3].mos_text, "63.963406174124174");  // no id: the number as Python writes it
  EXPECT_EQ(r[4].mos, 28.00384536);
  EXPECT_EQ(r[5].mos_text, "5");
  EXPECT_FALSE(r[5].std);
  EXPECT_TRUE(r[6].is_video());
  EXPECT_FALSE(r[0].is_video());
  EXPECT_EQ(r[6].std, 0.5);
  EXPECT_EQ(r[6].mos_text, "78.7741935483871");
  EXPECT_TRUE(r[7].is_video());
  EXPECT_EQ(r[7].path, "/abs/0000.MP4");  // absolute paths ignore the folder
  EXPECT_EQ(r[7].mos_text, "1.187");
}

TEST(Dataset, PythonFloatText) {
  EXPECT_EQ(python_float_text(5.0), "5.0");
  EXPECT_EQ(python_float_text(0.0), "0.0");
  EXPECT_EQ(python_float_text(-2.5), "-2.5");
  EXPECT_EQ(python_float_text(77.3836206897), "77.3836206897");
  EXPECT_EQ(python_float_text(0.0001), "0.0001");
  EXPECT_EQ(python_float_text(1e-05), "1e-05");
  EXPECT_EQ(python_float_text(1.5e-7), "1.5e-07");
  EXPECT_EQ(python_float_text(1e15), "1000000000000000.0");
  EXPECT_EQ(python_float_text(1e16), "1e+16");
  EXPECT_EQ(python_float_text(123456789012345678.0), "1.2345678901234568e+17");
  EXPECT_EQ(python_float_text(0.1 + 0.2), "0.30000000000000004");
}

TEST(Dataset, TrainingRecords) {
  const json records = json::parse(R"([
    {"id": "10004473376.jpg->77.3836206897", "image": "koniq/10004473376.jpg",
     "conversations": [{"from": "human", "value": "What is your quality rating for this image?\n<|image|>"},
                       {"from": "gpt", "value": "The quality of the image is excellent."}]},
    {"image": "maxwell/0001.mp4", "id": "0001.mp4->1.057142857",
     "conversations": [{"from": "human", "value": "How would you rate the quality of this video?  <|image|><|image|>"},
                       {"from": "gpt", "value": "The quality of the video is bad."}]},
    {"id": "agiqa3k/sd1.5_highcorr_181.jpg->1.960618923", "image": "agi-cgi/sd1.5_highcorr_181.jpg",
     "conversations": [{"from": "human", "value": "q\n<|image|>"}, {"from": "gpt", "value": "a"}],
     "gt_score": "1.960618923"},
    {"id": "pair", "image": ["a.jpg", "b.jpg"],
     "conversations": [{"from": "human", "value": "<|image|>q"}, {"from": "gpt", "value": "a"}]},
    {"id": "text only", "conversations": [{"from": "human", "value": "hello"}, {"from": "gpt", "value": "hi"}]}
  ])");
  const auto r = parse_training_records(records, "train.json", "playground/data");
  ASSERT_EQ(r.size(), 5u);
  EXPECT_EQ(r[0].paths, std::vector<std::string>{"playground/data/koniq/10004473376.jpg"});
  EXPECT_EQ(r[0].mos, 77.3836206897);
  EXPECT_FALSE(r[0].gt_score);
  EXPECT_EQ(r[0].conversations.size(), 2u);
  EXPECT_EQ(r[0].conversations[1].value, "The quality of the image is excellent.");
  EXPECT_TRUE(r[1].is_video());
  EXPECT_EQ(r[1].mos, 1.057142857);
  EXPECT_EQ(r[2].gt_score, 1.960618923);
  EXPECT_EQ(r[3].images.size(), 2u);
  EXPECT_FALSE(r[3].is_video());
  EXPECT_FALSE(r[3].mos);  // "pair" has no "->MOS"
  EXPECT_FALSE(r[4].has_image());
}

// Each malformed record names the file, the record index and the field.
TEST(Dataset, MalformedRecords) {
  struct Case {
    const char* json;
    bool training;
    const char* message;
  };
  const std::vector<Case> cases = {
      {R"([{"gt_score": 1}])", false, "bad.json: [0].image: missing"},
      {R"([{"image": 3, "gt_score": 1}])", false, "bad.json: [0].image: expected a string, got number"},
      {R"([{"image": "a.jpg", "gt_score": 1}, {"img_path": "", "gt_score": 1}])", false,
       "bad.json: [1].img_path: empty"},
      {R"([{"image": "a.jpg", "gt_score": "4,5"}])", false, "bad.json: [0].gt_score: \"4,5\" is not a number"},
      {R"([{"image": "a.jpg", "gt_score": true}])", false, "bad.json: [0].gt_score: expected a number"},
      {R"([{"image": "a.jpg", "gt_score": null}])", false, "bad.json: [0].gt_score: expected a number"},
      {R"([{"image": "a.jpg"}])", false, "bad.json: [0].gt_score: missing"},
      {R"([{"id": "a.jpg->good", "image": "a.jpg"}])", false, "bad.json: [0].id: \"good\" is not a number"},
      {R"([{"image": "a.jpg", "gt_score": 1, "std": "wide"}])", false, "bad.json: [0].std: \"wide\" is not a number"},
      {R"([{"image": "a.jpg", "gt_score": 1}, 7])", false, "bad.json: [1]: expected an object"},
      {R"([{"id": 5, "image": "a.jpg", "gt_score": 1}])", false, "bad.json: [0].id: expected a string"},
      {R"([{"image": "a.jpg"}])", true, "bad.json: [0].conversations: missing"},
      {R"([{"image": "a.jpg", "conversations": []}])", true, "bad.json: [0].conversations: expected a non-empty array"},
      {R"([{"image": "a.jpg", "conversations": [{"from": "system", "value": "<|image|>"}]}])", true,
       "bad.json: [0].conversations[0].from: \"system\" is neither"},
      {R"([{"image": "a.jpg", "conversations": [{"from": "human", "value": 1}]}])", true,
       "bad.json: [0].conversations[0].value: expected a string"},
      {R"([{"image": "a.jpg", "conversations": [{"from": "human"}]}])", true,
       "bad.json: [0].conversations[0].value: missing"},
      {R"([{"image": ["a.jpg", 2], "conversations": [{"from": "human", "value": "<|image|>"}]}])", true,
       "bad.json: [0].image[1]: expected a non-empty path"},
      {R"([{"image": {}, "conversations": [{"from": "human", "value": "<|image|>"}]}])", true,
       "bad.json: [0].image: expected a path or a non-empty list"},
      {R"([{"conversations": [{"from": "human", "value": "q\n<|image|>"}]}])", true,
       "bad.json: [0].image: missing, but a human turn holds <|image|>"},
      {R"([{"image": "a.jpg", "conversations": [{"from": "human", "value": "q"}]}])", true,
       "bad.json: [0].conversations: no human turn holds <|image|>"},
      {R"([{"image": "a.jpg", "gt_score": "n/a", "conversations": [{"from": "human", "value": "<|image|>"}]}])", true,
       "bad.json: [0].gt_score: \"n/a\" is not a number"},
  };
  for (const auto& c : cases) {
    const json array = json::parse(c.json);
    try {
      if (c.training)
        parse_training_records(array, "bad.json");
      else
        parse_scored_records(array, "bad.json");
      ADD_FAILURE() << "no error for " << c.json;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos) << e.what() << "\nwanted: " << c.message;
    }
  }
}

TEST(Dataset, FileErrorsNameTheFile) {
  const std::string missing = "/nonexistent/labels.json";
  try {
    read_scored_records(missing);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
  }
  const std::string not_array = test::fixture("deqa-soft-labels/golden.json");  // an object
  try {
    read_training_records(not_array);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(not_array + ": expected a JSON array"), std::string::npos) << e.what();
  }
}

// Every label file the authors ship reads in its role: scored files as scored records, files with
// conversations as training records.
TEST(Dataset, AllAuthorsLabelFilesRead) {
  const std::string root = test::shared("data/q-align-labels");
  if (root.empty()) GTEST_SKIP() << "../shared/data/q-align-labels is not available";
  size_t files = 0, records = 0;
  std::map<std::string, size_t> counts;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    if (entry.path().extension() != ".json") continue;
    const std::string path = entry.path().string();
    const json array = read_json_array(path);
    const auto scored = parse_scored_records(array, path);
    if (!array.empty() && array[0].contains("conversations")) parse_training_records(array, path);
    counts[std::filesystem::relative(entry.path(), root).string()] = scored.size();
    records += scored.size();
    ++files;
  }
  std::cout << "[labels] " << files << " files, " << records << " records read\n";
  EXPECT_EQ(counts["test_jsons/test_kadid.json"], 2000u);
  EXPECT_EQ(counts["test_jsons/agi.json"], 2982u);
  EXPECT_EQ(counts["training_sft/train_koniq.json"], 7046u);
  const auto kadid = read_scored_records(root + "/test_jsons/test_kadid.json");
  EXPECT_EQ(kadid[0].mos, 4.63);
  const auto konvid = read_scored_records(root + "/test_jsons/konvid.json", "KoNViD_1k_videos");
  EXPECT_TRUE(konvid[0].is_video());
  EXPECT_EQ(konvid[0].path, "KoNViD_1k_videos/3339962845.mp4");
}

TEST(DatasetMix, WeightsAndSeed) {
  const auto mix = mix_datasets({10, 7}, {2.0, 0.5}, 42);
  ASSERT_EQ(mix.size(), 20u + 4u);  // 2 · 10, round(0.5 · 7)
  std::map<size_t, std::multiset<size_t>> by_source;
  for (const auto& e : mix) by_source[e.dataset].insert(e.record);
  for (size_t r = 0; r < 10; ++r) EXPECT_EQ(by_source[0].count(r), 2u);
  EXPECT_EQ(std::set<size_t>(by_source[1].begin(), by_source[1].end()).size(), 4u);  // without replacement
  const auto again = mix_datasets({10, 7}, {2.0, 0.5}, 42);
  const auto other = mix_datasets({10, 7}, {2.0, 0.5}, 43);
  auto same = [](const std::vector<MixEntry>& a, const std::vector<MixEntry>& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const MixEntry& x, const MixEntry& y) {
      return x.dataset == y.dataset && x.record == y.record;
    });
  };
  EXPECT_TRUE(same(mix, again));
  EXPECT_FALSE(same(mix, other));
  EXPECT_TRUE(mix_datasets({5}, {0.0}, 1).empty());
  EXPECT_THROW(mix_datasets({5}, {-1.0}, 1), Error);
}

TEST(DatasetMix, SourceSpecs) {
  EXPECT_EQ(parse_dataset_source("train_koniq.json").weight, 1.0);
  const auto w = parse_dataset_source("a/train_spaq.json:0.25");
  EXPECT_EQ(w.path, "a/train_spaq.json");
  EXPECT_EQ(w.weight, 0.25);
  EXPECT_EQ(parse_dataset_source("c:/x.json").path, "c:/x.json");  // not a weight
  EXPECT_THROW(parse_dataset_source("a.json:-2"), Error);
}

// Two small label files mixed through their "path:weight" specs.
TEST(DatasetMix, ReadsAndMixesFiles) {
  char tmpl[] = "/tmp/qalign-dataset-XXXXXX";
  if (!mkdtemp(tmpl)) throw std::runtime_error("cannot create a folder in /tmp");
  const std::string dir = tmpl, a = dir + "/a.json", b = dir + "/b.json";
  auto records = [](const std::string& prefix, int n) {
    json out = json::array();
    for (int i = 0; i < n; ++i)
      out.push_back(
          {{"id", prefix + std::to_string(i)},
           {"image", prefix + std::to_string(i) + ".jpg"},
           {"conversations", {{{"from", "human"}, {"value", "q\n<|image|>"}}, {{"from", "gpt"}, {"value", "a"}}}}});
    return out.dump();
  };
  io::write_file_atomic(a, records("a", 4));
  io::write_file_atomic(b, records("b", 6));
  const std::vector<DatasetSource> sources = {parse_dataset_source(a + ":1.5"), parse_dataset_source(b)};
  const auto mixed = read_training_mix(sources, "root", 9);
  std::filesystem::remove(a);
  std::filesystem::remove(b);
  std::filesystem::remove(dir);
  ASSERT_EQ(mixed.size(), 6u + 6u);  // round(1.5 · 4) + 6
  size_t from_a = 0;
  for (const auto& r : mixed) from_a += r.id[0] == 'a';
  EXPECT_EQ(from_a, 6u);
  EXPECT_EQ(mixed[0].paths[0], "root/" + mixed[0].images[0]);
}

TEST(DatasetSft, OneHotRecords) {
  const json input = json::parse(R"([
    {"image": "spaq/00001.jpg", "gt_score": 56.4},
    {"image": "spaq/00002.jpg", "gt_score": 94},
    {"id": "00003.jpg->75.2", "image": "spaq/00003.jpg"},
    {"img_path": "spaq/00004.jpg", "gt_score": "12.50"}
  ])");
  const auto records = parse_scored_records(input, "in.json");
  const OneHotLabeler labeler(Syllabus({0, 94}, OutOfRange::kDrop, "test"));
  SftOptions options;
  options.seed = 7;
  const auto out = make_sft_records(records, labeler, options, "in.json");
  ASSERT_EQ(out.records.size(), 3u);
  EXPECT_EQ(out.dropped, 1u);  // 94 ≥ M
  EXPECT_EQ(out.records[0]["id"], "spaq/00001.jpg->56.4");
  EXPECT_EQ(out.records[0]["conversations"][1]["value"], "The quality of the image is fair.");
  EXPECT_EQ(out.records[1]["id"], "00003.jpg->75.2");  // the authors' id is kept
  EXPECT_EQ(out.records[1]["conversations"][1]["value"], "The quality of the image is excellent.");
  EXPECT_EQ(out.records[2]["id"], "spaq/00004.jpg->12.50");  // the string as written
  EXPECT_EQ(out.records[2]["gt_score"], 12.5);
  for (const auto& rec : out.records) {
    const std::string human = rec["conversations"][0]["value"];
    const std::string question = human.substr(0, human.size() - std::string("\n<|image|>").size());
    EXPECT_EQ(human, question + "\n<|image|>");
    EXPECT_NE(std::find(iqa_questions().begin(), iqa_questions().end(), question), iqa_questions().end()) << question;
    EXPECT_FALSE(rec.contains("level_probs"));
  }
  EXPECT_EQ(make_sft_records(records, labeler, options, "in.json").records, out.records);  // same seed, same file

  // Questions spread over the list and depend on the seed.
  std::vector<ScoredRecord> many(200, records[0]);
  std::set<std::string> asked;
  for (const auto& rec : make_sft_records(many, labeler, options, "in.json").records)
    asked.insert(rec["conversations"][0]["value"].get<std::string>());
  EXPECT_EQ(asked.size(), iqa_questions().size());
  SftOptions other = options;
  other.seed = 8;
  EXPECT_NE(make_sft_records(many, labeler, other, "in.json").records,
            make_sft_records(many, labeler, options, "in.json").records);
}

TEST(DatasetSft, VideoAndErrors) {
  const auto records = parse_scored_records(json::parse(R"([{"image": "lsvq/1.mp4", "gt_score": 99}])"), "in.json");
  const OneHotLabeler clamp(Syllabus({20, 90}, OutOfRange::kClamp, "test"));
  SftOptions options;
  options.media = Media::kVideo;
  const auto out = make_sft_records(records, clamp, options, "in.json");
  ASSERT_EQ(out.records.size(), 1u);
  const std::string human = out.records[0]["conversations"][0]["value"];
  const std::string eight = "\n<|image|><|image|><|image|><|image|><|image|><|image|><|image|><|image|>";
  ASSERT_GT(human.size(), eight.size());
  EXPECT_EQ(human.substr(human.size() - eight.size()), eight);
  EXPECT_NE(human.find(" video"), std::string::npos) << human;
  EXPECT_EQ(out.records[0]["conversations"][1]["value"], "The quality of the video is excellent.");
  options.task = Task::kAesthetics;
  EXPECT_THROW(make_sft_records(records, clamp, options, "in.json"), Error);
}

}  // namespace
}  // namespace qalign::data
