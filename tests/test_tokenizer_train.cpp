// The demo's prompt tokenizer: trained from the prompts, loadable by our Tokenizer, every level
// word one piece, and every prompt (and any other text, through byte fallback) encodable.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "qalign/base/error.h"
#include "qalign/conversation.h"
#include "qalign/prompts.h"
#include "qalign/tokenizer.h"
#include "qalign/tokenizer_train.h"
#include "tests/support/fixtures.h"

using namespace qalign;

namespace {

const std::string& trained_dir() {
  static const std::string dir = [] {
    static const test::ScratchDir scratch("qalign-tokenizer");
    const std::string d = scratch.file("prompt_tokenizer");
    train_prompt_tokenizer(d, 512);
    return d;
  }();
  return dir;
}

}  // namespace

TEST(TokenizerTrain, WritesAFolderTheTokenizerLoads) {
  for (const char* f : {"tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"})
    EXPECT_TRUE(std::filesystem::exists(trained_dir() + "/" + f)) << f;
  const auto config = nlohmann::json::parse(std::ifstream(trained_dir() + "/tokenizer_config.json"));
  EXPECT_EQ(config["legacy"], false);
  const Tokenizer tok(trained_dir());
  EXPECT_EQ(tok.vocab_size(), 512);
  EXPECT_FALSE(tok.legacy());
  EXPECT_EQ(tok.unk_id(), 0);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.id_to_token(0), "<unk>");
  EXPECT_EQ(tok.id_to_token(3), "<0x00>");  // byte pieces follow the specials, as in LLaMA's
}

TEST(TokenizerTrain, LevelWordsAreSinglePieces) {
  const Tokenizer tok(trained_dir());
  const auto ids = tok.level_token_ids();
  ASSERT_EQ(ids.size(), 5u);
  EXPECT_EQ(std::set<int64_t>(ids.begin(), ids.end()).size(), 5u);
  for (size_t k = 0; k < ids.size(); ++k) EXPECT_EQ(tok.id_to_token(ids[k]), "\xE2\x96\x81" + level_words()[k]);
}

TEST(TokenizerTrain, EncodesPromptsCompactlyAndRoundTrips) {
  const Tokenizer tok(trained_dir());
  const auto prompt = inference_prompt(PromptStyle::kEval, Task::kQuality, Media::kImage);
  const auto ids = tok.tokenizer_image_token(prompt);
  EXPECT_EQ(ids.front(), tok.bos_id());
  EXPECT_EQ(std::count(ids.begin(), ids.end(), kImageTokenIndex), 1);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), tok.unk_id()), 0);
  EXPECT_LT(ids.size(), 30u);  // words, not letters: the prompts are what it learned

  // The training text with its answer: the level word right after "is", the end token last.
  const auto sample = build_supervised_sample(tok,
                                              {{"human", std::string(kImageToken) + "\n" + iqa_questions()[3]},
                                               {"gpt", training_answer(Task::kQuality, Media::kImage, "poor")}},
                                              true, 2048);
  EXPECT_FALSE(sample.tokenization_mismatch);
  EXPECT_EQ(sample.input_ids.back(), tok.eos_id());
  const auto poor = tok.level_token_ids()[3];
  EXPECT_NE(std::find(sample.input_ids.begin(), sample.input_ids.end(), poor), sample.input_ids.end());

  const std::string text = "What do you think about the quality of this image?";
  EXPECT_EQ(tok.decode(tok.encode(text), true), text);
}

TEST(TokenizerTrain, UnseenTextFallsBackToBytes) {
  const Tokenizer tok(trained_dir());
  const std::string text = "Qualität 42% — ok?";
  const auto ids = tok.encode(text);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), tok.unk_id()), 0);
  EXPECT_EQ(tok.decode(ids, true), text);
}

TEST(TokenizerTrain, CorpusCoversEveryPhrasingAndLevel) {
  const auto corpus = prompt_corpus();
  const auto has = [&](const std::string& s) { return std::find(corpus.begin(), corpus.end(), s) != corpus.end(); };
  for (const auto& q : iqa_questions())
    EXPECT_TRUE(has(q + " ASSISTANT: " + training_answer(Task::kQuality, Media::kImage, "fair"))) << q;
  for (const auto& s : corpus) {
    EXPECT_EQ(s.find(kImageToken), std::string::npos) << s;
    EXPECT_EQ(s.find('\n'), std::string::npos) << s;
  }
}

TEST(TokenizerTrain, AVocabularyTheCorpusCannotFillIsAnError) {
  EXPECT_THROW(train_prompt_tokenizer(test::ScratchDir("qalign-tokenizer").file("too_big"), 20000), Error);
}
