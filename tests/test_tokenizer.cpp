// Tokenizer, prompts and training text against the goldens made with the authors' code:
// llama2-tokenizer/golden_tokens.json (real LLaMA model, legacy true and false; every entry) and
// the qalign-tiny fixture (its own small tokenizer; inference cases and the training batch).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <tuple>

#include "qalign/base/error.h"
#include "qalign/conversation.h"
#include "qalign/io/safetensors.h"
#include "qalign/prompts.h"
#include "qalign/tokenizer.h"
#include "tests/support/fixtures.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace qalign;

namespace {

using Ids = std::vector<int64_t>;

json read_golden_json(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  return json::parse(in);
}

// Deletes a flat folder of files. Not fs::remove_all: the LibTorch wheel's libtorch.so exports its
// own copy, which crashes with this system's libstdc++.
void remove_folder(const fs::path& d) {
  if (!fs::exists(d)) return;
  for (const auto& entry : fs::directory_iterator(d)) std::remove(entry.path().c_str());
  std::remove(d.c_str());
}

fs::path tokenizer_dir(const std::string& name) {
  static const test::ScratchDir root("qalign-tokenizer");  // removed at exit
  fs::path d = fs::path(root.path()) / name;
  remove_folder(d);
  fs::create_directories(d);
  return d;
}

// The fixture ships the two configs apart from the model: put them together as a checkpoint
// folder would hold them.
fs::path llama_folder(const std::string& legacy_dir) {
  const fs::path d = tokenizer_dir(legacy_dir);
  fs::copy_file(test::fixture("llama2-tokenizer/tokenizer.model"), d / "tokenizer.model");
  for (const char* f : {"tokenizer_config.json", "special_tokens_map.json"})
    fs::copy_file(test::fixture("llama2-tokenizer/" + legacy_dir + "/" + f), d / f);
  return d;
}

std::vector<Turn> turns_of(const json& conversations) {
  std::vector<Turn> turns;
  for (const auto& t : conversations) turns.push_back({t["from"].get<std::string>(), t["value"].get<std::string>()});
  return turns;
}

json turns_to_json(const std::vector<Turn>& turns) {
  json out = json::array();
  for (const auto& t : turns) out.push_back({{"from", t.from}, {"value", t.value}});
  return out;
}

Ids tensor_row(const torch::Tensor& t, int64_t row) {
  auto r = t[row].to(torch::kInt64).contiguous();
  return Ids(r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + r.numel());
}

// Golden prompt name → how our builder makes it (style, task, media, placeholders).
std::tuple<PromptStyle, Task, Media, int> golden_prompt_recipe(const std::string& name) {
  static const std::map<std::string, std::tuple<PromptStyle, Task, Media, int>> recipes = {
      {"scorer.image_quality", {PromptStyle::kScorer, Task::kQuality, Media::kImage, 1}},
      {"scorer.image_aesthetics", {PromptStyle::kScorer, Task::kAesthetics, Media::kImage, 1}},
      {"scorer.video_quality", {PromptStyle::kScorer, Task::kQuality, Media::kVideo, 1}},
      {"scorer.video_quality_8_placeholders", {PromptStyle::kScorer, Task::kQuality, Media::kVideo, 8}},
      {"model_score.quality_image", {PromptStyle::kModelScore, Task::kQuality, Media::kImage, 1}},
      {"model_score.aesthetics_image", {PromptStyle::kModelScore, Task::kAesthetics, Media::kImage, 1}},
      {"model_score.quality_video", {PromptStyle::kModelScore, Task::kQuality, Media::kVideo, 1}},
      {"iqa_eval.image_quality", {PromptStyle::kEval, Task::kQuality, Media::kImage, 1}},
      {"iaa_eval.image_aesthetics", {PromptStyle::kEval, Task::kAesthetics, Media::kImage, 1}},
      {"vqa_eval.video_quality", {PromptStyle::kEval, Task::kQuality, Media::kVideo, 1}},
      {"vqa_eval.video_quality_8_placeholders", {PromptStyle::kEval, Task::kQuality, Media::kVideo, 8}},
  };
  const auto it = recipes.find(name);
  if (it == recipes.end()) throw std::runtime_error("golden prompt without a recipe: " + name);
  return it->second;
}

// Checks everything golden_tokens.json records for one `legacy` value.
class LlamaGoldens : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const std::string legacy_dir = GetParam() == "legacy_true" ? "legacy-true" : "legacy-false";
    folder_ = llama_folder(legacy_dir);
    tok_ = std::make_unique<Tokenizer>(folder_.string());
    golden_ = read_golden_json(test::fixture("llama2-tokenizer/golden_tokens.json"))["configs"][GetParam()];
  }
  void TearDown() override { remove_folder(folder_); }

  fs::path folder_;
  std::unique_ptr<Tokenizer> tok_;
  json golden_;
};

TEST_P(LlamaGoldens, LoadedSettings) {
  const json& g = golden_["loaded"];
  EXPECT_EQ(tok_->legacy(), g["legacy"].get<bool>());
  EXPECT_EQ(tok_->vocab_size(), g["vocab_size"].get<int64_t>());
  EXPECT_EQ(tok_->bos_id(), g["bos_token_id"].get<int64_t>());
  EXPECT_EQ(tok_->eos_id(), g["eos_token_id"].get<int64_t>());
  EXPECT_EQ(tok_->unk_id(), g["unk_token_id"].get<int64_t>());
  EXPECT_EQ(tok_->pad_id(), g["pad_token_id"].get<int64_t>());
  EXPECT_EQ(tok_->add_bos_token(), g["add_bos_token"].get<bool>());
  EXPECT_EQ(tok_->add_eos_token(), g["add_eos_token"].get<bool>());
  EXPECT_EQ(tok_->model_max_length(), golden_["train_tokenizer"]["model_max_length"].get<int64_t>());
  for (const auto& special : g["all_special_tokens"]) {
    EXPECT_EQ(tok_->tokenize(special.get<std::string>()), std::vector<std::string>{special});
  }
}

TEST_P(LlamaGoldens, LevelWords) {
  const json& g = golden_["levels"];
  ASSERT_EQ(g["words"].get<std::vector<std::string>>(), level_words());
  EXPECT_EQ(tok_->level_token_ids(), g["preferential_ids"].get<Ids>());
  for (size_t i = 0; i < level_words().size(); ++i) {
    EXPECT_EQ(tok_->encode(level_words()[i]), g["input_ids"][i].get<Ids>()) << level_words()[i];
  }
  const json& e = golden_["eval_toks"];
  for (size_t i = 0; i < e["words"].size(); ++i) {
    const std::string word = e["words"][i];
    EXPECT_EQ(tok_->encode(word), e["input_ids"][i].get<Ids>()) << word;
    EXPECT_EQ(tok_->word_token_id(word), e["ids"][i].get<int64_t>()) << word;
  }
}

TEST_P(LlamaGoldens, EveryPrompt) {
  ASSERT_FALSE(golden_["prompts"].empty());
  for (const auto& [name, g] : golden_["prompts"].items()) {
    const auto [style, task, media, placeholders] = golden_prompt_recipe(name);
    const std::string prompt = inference_prompt(style, task, media, placeholders);
    EXPECT_EQ(prompt, g["prompt"].get<std::string>()) << name;
    const Ids ids = tok_->tokenizer_image_token(prompt);
    EXPECT_EQ(ids, g["input_ids"].get<Ids>()) << name;
    EXPECT_EQ(std::count(ids.begin(), ids.end(), kImageTokenIndex), g["num_image_placeholders"].get<int64_t>()) << name;
  }
}

TEST_P(LlamaGoldens, EveryString) {
  ASSERT_FALSE(golden_["strings"].empty());
  for (const auto& g : golden_["strings"]) {
    const std::string text = g["text"];
    const Ids ids = g["input_ids"];
    EXPECT_EQ(tok_->encode(text), ids) << text;
    EXPECT_EQ(tok_->encode(text, false), g["encode_no_special"].get<Ids>()) << text;
    EXPECT_EQ(tok_->tokenize(text), g["tokenize"].get<std::vector<std::string>>()) << text;
    EXPECT_EQ(tok_->decode(ids), g["decode"].get<std::string>()) << text;
    EXPECT_EQ(tok_->decode(ids, true), g["decode_skip_special"].get<std::string>()) << text;
  }
}

TEST_P(LlamaGoldens, EveryDecode) {
  ASSERT_FALSE(golden_["decode"].empty());
  for (const auto& g : golden_["decode"]) {
    const Ids ids = g["ids"];
    const std::string where = g.dump();
    std::vector<std::string> tokens;
    for (int64_t id : ids) tokens.push_back(tok_->id_to_token(id));
    EXPECT_EQ(tokens, g["tokens"].get<std::vector<std::string>>()) << where;
    EXPECT_EQ(tok_->decode(ids), g["decode"].get<std::string>()) << where;
    EXPECT_EQ(tok_->decode(ids, true), g["decode_skip_special"].get<std::string>()) << where;
  }
}

TEST_P(LlamaGoldens, EveryTrainingConversation) {
  std::vector<SupervisedSample> train;
  for (const char* list : {"train", "train_extra"}) {
    ASSERT_FALSE(golden_[list].empty());
    for (const auto& g : golden_[list]) {
      const std::string id = g["id"];
      const auto turns = turns_of(g["conversations"]);
      EXPECT_EQ(turns_to_json(normalize_image_placeholders(turns)), g["after_preprocess_multimodal"]) << id;
      const auto s = build_supervised_sample(*tok_, turns, true, tok_->model_max_length());
      EXPECT_EQ(s.prompt, g["prompt"].get<std::string>()) << id;
      EXPECT_EQ(s.input_ids, g["input_ids"].get<Ids>()) << id;
      EXPECT_EQ(s.labels, g["labels"].get<Ids>()) << id;
      EXPECT_EQ(s.tokenization_mismatch, g["tokenization_mismatch"].get<bool>()) << id;
      EXPECT_EQ(std::count_if(s.labels.begin(), s.labels.end(), [](int64_t l) { return l != kIgnoreIndex; }),
                g["num_supervised"].get<int64_t>())
          << id;
      if (std::string(list) == "train") train.push_back(s);
    }
  }
  const json& b = golden_["train_batch"];
  const auto batch = collate_supervised(train, tok_->pad_id(), tok_->model_max_length());
  for (int64_t i = 0; i < batch.input_ids.size(0); ++i) {
    EXPECT_EQ(tensor_row(batch.input_ids, i), b["input_ids"][i].get<Ids>()) << i;
    EXPECT_EQ(tensor_row(batch.labels, i), b["labels"][i].get<Ids>()) << i;
    EXPECT_EQ(tensor_row(batch.attention_mask, i), b["attention_mask"][i].get<Ids>()) << i;
  }
  EXPECT_EQ(batch.input_ids.size(0), static_cast<int64_t>(b["input_ids"].size()));
}

INSTANTIATE_TEST_SUITE_P(Legacy, LlamaGoldens, ::testing::Values("legacy_true", "legacy_false"));

TEST(Tokenizer, SpecExampleOfTrainingText) {
  // SPEC §3.5: KonIQ's first phrasing answered "good", 62 ids, 9 supervised.
  const fs::path folder = llama_folder("legacy-false");
  const Tokenizer tok(folder.string());
  const auto s = build_supervised_sample(tok,
                                         {{"human", iqa_questions()[0] + "\n" + kImageToken},
                                          {"gpt", training_answer(Task::kQuality, Media::kImage, "good")}},
                                         true, 2048);
  const Ids expected = {1,     319,   13563, 1546, 263,   12758, 1404,  322,   385,   23116, 21082, 20255, 29889,
                        450,   20255, 4076,  8444, 29892, 13173, 29892, 322,   1248,  568,   6089,  304,   278,
                        1404,  29915, 29879, 5155, 29889, 3148,  1001,  29901, 29871, -200,  29871, 13,    5328,
                        723,   366,   6554,  278,  11029, 310,   445,   1967,  29973, 319,   1799,  9047,  13566,
                        29901, 450,   11029, 310,  278,   1967,  338,   1781,  29889, 2};
  EXPECT_EQ(s.input_ids, expected);
  Ids labels(expected.size(), kIgnoreIndex);
  std::copy(expected.end() - 9, expected.end(), labels.end() - 9);
  EXPECT_EQ(s.labels, labels);
  remove_folder(folder);
}

TEST(Tokenizer, TinyFixture) {
  const Tokenizer tok(test::fixture("qalign-tiny/model"));
  const json golden = read_golden_json(test::fixture("qalign-tiny/golden.json"));
  EXPECT_FALSE(tok.legacy());
  EXPECT_EQ(tok.model_max_length(), INT64_MAX);  // HF's 1e30
  EXPECT_EQ(tok.pad_id(), tok.unk_id());         // pad_token null: training sets pad = unk
  EXPECT_EQ(tok.vocab_size(), golden["vocab_size"].get<int64_t>());
  EXPECT_EQ(tok.level_token_ids(), golden["preferential_ids"].get<Ids>());
  for (const auto& [word, tokens] : golden["level_tokenization"].items()) {
    std::vector<std::string> expected = tokens;
    expected.erase(expected.begin());  // "<s>"
    EXPECT_EQ(tok.tokenize(word), expected) << word;
  }
  for (const auto& [text, g] : golden["tokenizer_checks"].items()) {
    EXPECT_EQ(tok.encode(text), g["input_ids"].get<Ids>()) << text;
    EXPECT_EQ(tok.tokenize(text), g["tokens"].get<std::vector<std::string>>()) << text;
  }
}

TEST(Tokenizer, TinyCasesInputIds) {
  const Tokenizer tok(test::fixture("qalign-tiny/model"));
  const json cases = read_golden_json(test::fixture("qalign-tiny/golden.json"))["cases"];
  const auto file = io::SafetensorsFile::open(test::fixture("qalign-tiny/golden.safetensors"));
  ASSERT_FALSE(cases.empty());
  for (const auto& [name, g] : cases.items()) {
    const Task task = name.rfind("aesthetic.", 0) == 0 ? Task::kAesthetics : Task::kQuality;
    const Media media = name == "video" ? Media::kVideo : Media::kImage;
    const PromptStyle style =
        name.rfind("model_score_prompt.", 0) == 0 ? PromptStyle::kModelScore : PromptStyle::kScorer;
    const std::string prompt = inference_prompt(style, task, media);
    EXPECT_EQ(prompt, g["prompt"].get<std::string>()) << name;
    const Ids ids = tok.tokenizer_image_token(prompt);
    EXPECT_EQ(ids, g["input_ids"].get<Ids>()) << name;
    const torch::Tensor golden_ids = file->get(name + ".input_ids");
    ASSERT_EQ(golden_ids.dim(), 2) << name;
    EXPECT_EQ(golden_ids.size(0), static_cast<int64_t>(g["inputs"].size())) << name;
    for (int64_t row = 0; row < golden_ids.size(0); ++row)
      EXPECT_EQ(tensor_row(golden_ids, row), ids) << name << " row " << row;
  }
}

TEST(Tokenizer, TinyTrainingBatch) {
  const Tokenizer tok(test::fixture("qalign-tiny/model"));
  const json data = read_golden_json(test::fixture("qalign-tiny/inputs/train.json"));
  const json prompts = read_golden_json(test::fixture("qalign-tiny/golden.json"))["train"]["prompts"];
  std::vector<SupervisedSample> samples;
  for (size_t i = 0; i < data.size(); ++i) {
    samples.push_back(build_supervised_sample(tok, turns_of(data[i]["conversations"]), true, 2048));
    EXPECT_EQ(samples.back().prompt, prompts[i].get<std::string>()) << i;
    EXPECT_FALSE(samples.back().tokenization_mismatch) << i;
  }
  const auto batch = collate_supervised(samples, tok.pad_id(), 2048);
  const auto file = io::SafetensorsFile::open(test::fixture("qalign-tiny/golden.safetensors"));
  EXPECT_TRUE(torch::equal(batch.input_ids, file->get("train.input_ids")));
  EXPECT_TRUE(torch::equal(batch.labels, file->get("train.labels")));
  EXPECT_TRUE(torch::equal(batch.attention_mask, file->get("train.attention_mask").to(torch::kBool)));
}

TEST(Tokenizer, PromptsAndPhrasings) {
  EXPECT_EQ(inference_prompt(PromptStyle::kScorer, Task::kQuality, Media::kImage),
            "USER: How would you rate the quality of this image?\n<|image|>\nASSISTANT: The "
            "quality of the image is");
  EXPECT_EQ(iqa_questions().size(), 9u);
  EXPECT_EQ(vqa_questions().size(), 8u);
  EXPECT_EQ(iaa_questions().size(), 5u);
  for (PromptStyle s : {PromptStyle::kScorer, PromptStyle::kModelScore, PromptStyle::kEval})
    EXPECT_EQ(parse_prompt_style(prompt_style_name(s), "test", "style"), s);
  EXPECT_EQ(parse_task("aesthetics", "test", "task"), Task::kAesthetics);
  EXPECT_EQ(parse_media("video", "test", "media"), Media::kVideo);
  EXPECT_THROW(parse_task("sharpness", "config.yaml", "task"), Error);
  EXPECT_THROW(inference_prompt(PromptStyle::kScorer, Task::kQuality, Media::kImage, 0), Error);
}

TEST(Tokenizer, CoexistsWithLibTorch) {
  // SentencePiece (static, its protobuf kept private) and LibTorch in one process: tokenise,
  // embed through a matmul with one-hot rows, and read the ids back.
  const Tokenizer tok(test::fixture("llama2-tokenizer/tokenizer.model"));
  const Ids ids = tok.encode("The quality of the image is excellent.");
  const auto index = torch::tensor(ids, torch::kInt64);
  const auto one_hot = torch::one_hot(index, tok.vocab_size()).to(torch::kFloat32);
  const auto table = torch::arange(tok.vocab_size(), torch::kFloat32).unsqueeze(1);
  const auto looked_up = torch::matmul(one_hot, table).squeeze(1).to(torch::kInt64);
  EXPECT_TRUE(torch::equal(looked_up, index));
  EXPECT_EQ(tok.decode(Ids(looked_up.data_ptr<int64_t>(), looked_up.data_ptr<int64_t>() + looked_up.numel()), true),
            "The quality of the image is excellent.");
}

using test::error_of;

TEST(Tokenizer, FolderWithoutModelNamesTheFile) {
  const fs::path d = tokenizer_dir("no_model");
  fs::copy_file(test::fixture("llama2-tokenizer/legacy-false/tokenizer_config.json"), d / "tokenizer_config.json");
  const std::string msg = error_of([&] { Tokenizer tok(d.string()); });
  EXPECT_NE(msg.find((d / "tokenizer.model").string()), std::string::npos) << msg;
  EXPECT_NE(error_of([&] { Tokenizer tok((d / "nothing.model").string()); }).find("nothing.model"), std::string::npos);
  remove_folder(d);
}

TEST(Tokenizer, BadConfigNamesTheFileAndField) {
  const fs::path d = tokenizer_dir("bad_config");
  fs::copy_file(test::fixture("qalign-tiny/model/tokenizer.model"), d / "tokenizer.model");
  std::ofstream(d / "tokenizer_config.json") << R"({"legacy": "yes"})";
  const std::string msg = error_of([&] { Tokenizer tok(d.string()); });
  EXPECT_NE(msg.find("tokenizer_config.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("legacy"), std::string::npos) << msg;
  std::ofstream(d / "tokenizer_config.json") << "{not json";
  EXPECT_NE(error_of([&] { Tokenizer tok(d.string()); }).find("tokenizer_config.json"), std::string::npos);
  remove_folder(d);
}

TEST(Tokenizer, MissingLevelWordNamesTheFile) {
  // The tiny model with its piece "▁excellent" renamed (same length, so the protobuf stays valid):
  // "excellent" then takes several pieces.
  const fs::path d = tokenizer_dir("no_level");
  std::ifstream in(test::fixture("qalign-tiny/model/tokenizer.model"), std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  std::string model = bytes.str();
  const size_t at = model.find(
      "\xE2\x96\x81"
      "excellent");
  ASSERT_NE(at, std::string::npos);
  model.replace(at + 3, 9, "exce11ent");
  std::ofstream(d / "tokenizer.model", std::ios::binary) << model;
  const Tokenizer tok((d / "tokenizer.model").string());
  const std::string msg = error_of([&] { tok.level_token_ids(); });
  EXPECT_NE(msg.find((d / "tokenizer.model").string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("excellent"), std::string::npos) << msg;
  remove_folder(d);
}

TEST(Tokenizer, RejectsIdsOutsideTheVocabulary) {
  const Tokenizer tok(test::fixture("qalign-tiny/model"));
  EXPECT_THROW(tok.decode({1, kImageTokenIndex}), Error);
  EXPECT_THROW(tok.id_to_token(tok.vocab_size()), Error);
}

}  // namespace
