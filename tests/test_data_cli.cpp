// `qalign data preview` against the authors' preprocess_v1 and collator (golden_tokens.json
// "train", "train_extra", "train_batch", both legacy tokenizer folders), and `qalign data
// make-sft` end to end.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "qalign/base/atomic_file.h"
#include "qalign/label_files.h"
#include "tests/support/fixtures.h"

namespace qalign {
namespace {

using nlohmann::json;

// A loadable tokenizer folder: the checkpoint's two JSON files plus tokenizer.model.
std::string tokenizer_folder(test::ScratchDir& tmp, const std::string& legacy) {
  const std::string src = test::fixture("llama2-tokenizer/");
  const std::string dir = tmp.file(legacy);
  std::filesystem::create_directory(dir);
  std::filesystem::copy_file(src + "tokenizer.model", tmp.file(legacy + "/tokenizer.model"));
  for (const char* name : {"tokenizer_config.json", "special_tokens_map.json"})
    std::filesystem::copy_file(src + legacy + "/" + name, tmp.file(legacy + "/" + name));
  return dir;
}

// The golden samples written as the authors' training records (every one has an image).
std::string write_records(test::ScratchDir& tmp, const std::string& name, const json& samples) {
  json records = json::array();
  for (const json& s : samples)
    records.push_back({{"id", s["id"]},
                       {"image", "img/" + std::to_string(records.size()) + ".jpg"},
                       {"conversations", s["conversations"]}});
  const std::string path = tmp.file(name);
  io::write_file_atomic(path, records.dump());
  return path;
}

std::vector<json> run_preview(const std::string& data, const std::string& tokenizer, bool collate) {
  std::string out;
  const std::string cmd = test::qalign_binary() + " -q data preview --json --data " + data + " --tokenizer " +
                          tokenizer + (collate ? " --collate" : "");
  const int rc = test::run_command(cmd, &out);
  EXPECT_EQ(rc, 0) << cmd << "\n" << out;
  std::vector<json> lines;
  std::istringstream in(out);
  // Warnings (a tokenization mismatch) share the captured output; the records are the JSON lines.
  for (std::string line; std::getline(in, line);)
    if (!line.empty() && line[0] == '{') lines.push_back(json::parse(line));
  return lines;
}

void expect_samples(const std::vector<json>& lines, const json& golden, const std::string& what) {
  for (size_t i = 0; i < golden.size(); ++i) {
    const json& g = golden[i];
    const json& l = lines[i];
    EXPECT_EQ(l["id"], g["id"]) << what << "[" << i << "]";
    EXPECT_EQ(l["prompt"], g["prompt"]) << what << "[" << i << "]";
    EXPECT_EQ(l["input_ids"], g["input_ids"]) << what << "[" << i << "]";
    EXPECT_EQ(l["labels"], g["labels"]) << what << "[" << i << "]";
    EXPECT_EQ(l["tokenization_mismatch"], g["tokenization_mismatch"]) << what << "[" << i << "]";
  }
}

class PreviewGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(PreviewGolden, ReproducesPreprocessAndCollator) {
  const json golden = json::parse(io::read_file(test::fixture("llama2-tokenizer/golden_tokens.json")));
  const std::string legacy = GetParam();
  const json& config = golden["configs"]["legacy_" + std::string(legacy == "legacy-true" ? "true" : "false")];
  test::ScratchDir tmp;
  const std::string tokenizer = tokenizer_folder(tmp, legacy);

  const auto train = run_preview(write_records(tmp, "train.json", config["train"]), tokenizer, true);
  ASSERT_EQ(train.size(), config["train"].size() + 1);  // the samples, then the batch
  expect_samples(train, config["train"], legacy + " train");
  const json& batch = train.back()["batch"];
  for (const char* key : {"input_ids", "labels", "attention_mask"})
    EXPECT_EQ(batch[key], config["train_batch"][key]) << legacy << " train_batch." << key;

  const auto extra = run_preview(write_records(tmp, "extra.json", config["train_extra"]), tokenizer, false);
  ASSERT_EQ(extra.size(), config["train_extra"].size());
  expect_samples(extra, config["train_extra"], legacy + " train_extra");
}

INSTANTIATE_TEST_SUITE_P(BothLegacyModes, PreviewGolden, ::testing::Values("legacy-true", "legacy-false"),
                         [](const auto& info) { return info.param == "legacy-true" ? "LegacyTrue" : "LegacyFalse"; });

TEST(MakeSft, WritesTrainingRecordsThePreviewReads) {
  test::ScratchDir tmp;
  const std::string in = tmp.file("scores.json"), out = tmp.file("sft.json");
  io::write_file_atomic(in, R"([
    {"id": "10007357496.jpg->68.7285714286", "image": "koniq/10007357496.jpg", "gt_score": 68.7285714286},
    {"img_path": "koniq/1.jpg", "gt_score": 3.91},
    {"img_path": "koniq/2.jpg", "gt_score": "85.36"}
  ])");
  std::string log;
  const std::string cmd =
      test::qalign_binary() + " data make-sft --input " + in + " --out " + out + " --preset koniq --seed 3";
  ASSERT_EQ(test::run_command(cmd, &log), 0) << cmd << "\n" << log;
  EXPECT_NE(log.find("2 dropped"), std::string::npos) << log;  // 3.91 < m, 85.36 ≥ M
  const auto records = read_training_records(out);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].id, "10007357496.jpg->68.7285714286");
  EXPECT_EQ(records[0].images, std::vector<std::string>{"koniq/10007357496.jpg"});
  EXPECT_EQ(records[0].conversations[1].value, "The quality of the image is good.");

  test::ScratchDir tok;
  const auto lines = run_preview(out, tokenizer_folder(tok, "legacy-false"), false);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0]["prompt"].get<std::string>().find("USER: <|image|>\n"), std::string::npos);
}

TEST(MakeSft, ErrorsNameFileAndField) {
  test::ScratchDir tmp;
  const std::string in = tmp.file("scores.json"), out = tmp.file("sft.json");
  io::write_file_atomic(in, R"([{"image": "a.jpg", "gt_score": 1.0}, {"image": "b.jpg", "gt_score": "high"}])");
  std::string log;
  EXPECT_NE(test::run_command(test::qalign_binary() + " data make-sft --input " + in + " --out " + out, &log), 0);
  EXPECT_NE(log.find(in + ": [1].gt_score: \"high\" is not a number"), std::string::npos) << log;

  io::write_file_atomic(in, R"([{"image": "a.jpg", "gt_score": 1.0}])");
  EXPECT_NE(
      test::run_command(
          test::qalign_binary() + " data make-sft --soft-labels pdf --range 0 5 --input " + in + " --out " + out, &log),
      0);
  EXPECT_NE(log.find(in + ": [0].std: missing"), std::string::npos) << log;
  EXPECT_NE(
      test::run_command(test::qalign_binary() + " data make-sft --preset ava --input " + in + " --out " + out, &log),
      0);
  EXPECT_NE(log.find("unknown preset \"ava\""), std::string::npos) << log;
}

}  // namespace
}  // namespace qalign
