#include "qalign/tokenizer_train.h"

#include <sentencepiece_trainer.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "qalign/base/atomic_file.h"
#include "qalign/base/error.h"
#include "qalign/conversation.h"
#include "qalign/prompts.h"
#include "qalign/tokenizer.h"

namespace qalign {

namespace {

// Cuts `text` at every occurrence of each separator; empty pieces are dropped.
std::vector<std::string> split_chunks(const std::string& text, const std::vector<std::string>& separators) {
  std::vector<std::string> chunks = {text};
  for (const auto& sep : separators) {
    std::vector<std::string> next;
    for (const auto& c : chunks) {
      size_t start = 0;
      for (size_t at; (at = c.find(sep, start)) != std::string::npos; start = at + sep.size())
        next.push_back(c.substr(start, at - start));
      next.push_back(c.substr(start));
    }
    chunks = std::move(next);
  }
  std::vector<std::string> out;
  for (auto& c : chunks)
    if (!c.empty()) out.push_back(std::move(c));
  return out;
}

class VectorIterator : public sentencepiece::SentenceIterator {
 public:
  explicit VectorIterator(const std::vector<std::string>& sentences) : sentences_(sentences) {}
  bool done() const override { return i_ >= sentences_.size(); }
  void Next() override { ++i_; }
  const std::string& value() const override { return sentences_[i_]; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  const std::vector<std::string>& sentences_;
  size_t i_ = 0;
};

nlohmann::ordered_json special_token(const std::string& content) {
  return {{"content", content}, {"lstrip", false}, {"normalized", false}, {"rstrip", false}, {"single_word", false}};
}

// What LlamaTokenizer.save_pretrained writes for a tokenizer with no pad token, legacy=False.
std::string tokenizer_config_json() {
  nlohmann::ordered_json added = nlohmann::ordered_json::object();
  const std::vector<std::string> specials = {"<unk>", "<s>", "</s>"};
  for (size_t id = 0; id < specials.size(); ++id) {
    auto t = special_token(specials[id]);
    t["special"] = true;
    added[std::to_string(id)] = t;
  }
  const nlohmann::ordered_json j = {{"add_bos_token", true},
                                    {"add_eos_token", false},
                                    {"added_tokens_decoder", added},
                                    {"bos_token", "<s>"},
                                    {"clean_up_tokenization_spaces", false},
                                    {"eos_token", "</s>"},
                                    {"legacy", false},
                                    {"model_max_length", 2048},
                                    {"pad_token", nullptr},
                                    {"sp_model_kwargs", nlohmann::ordered_json::object()},
                                    {"spaces_between_special_tokens", false},
                                    {"tokenizer_class", "LlamaTokenizer"},
                                    {"unk_token", "<unk>"},
                                    {"use_default_system_prompt", false}};
  return j.dump(2) + "\n";
}

std::string special_tokens_map_json() {
  const nlohmann::ordered_json j = {
      {"bos_token", special_token("<s>")}, {"eos_token", special_token("</s>")}, {"unk_token", special_token("<unk>")}};
  return j.dump(2) + "\n";
}

}  // namespace

std::vector<std::string> prompt_corpus() {
  std::vector<std::string> texts;
  for (PromptStyle style : {PromptStyle::kScorer, PromptStyle::kModelScore, PromptStyle::kEval})
    for (Task task : {Task::kQuality, Task::kAesthetics})
      for (Media media : {Media::kImage, Media::kVideo}) texts.push_back(inference_prompt(style, task, media));
  struct QuestionSet {
    Task task;
    Media media;
    const std::vector<std::string>& questions;
  };
  const std::vector<QuestionSet> sets = {{Task::kQuality, Media::kImage, iqa_questions()},
                                         {Task::kQuality, Media::kVideo, vqa_questions()},
                                         {Task::kAesthetics, Media::kImage, iaa_questions()}};
  for (const auto& set : sets)
    for (const auto& question : set.questions)
      for (const auto& word : level_words())
        texts.push_back(render_conversation(vicuna_v1_template(), {std::string(kImageToken) + "\n" + question,
                                                                   training_answer(set.task, set.media, word)}));
  std::vector<std::string> sentences;
  for (const auto& text : texts)
    for (auto& chunk : split_chunks(text, {kImageToken, "</s>", "\n"})) sentences.push_back(std::move(chunk));
  return sentences;
}

int64_t train_prompt_tokenizer(const std::string& dir, int64_t vocab_size) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(dir, "", "cannot create the tokenizer folder: " + ec.message());

  // LLaMA's trainer settings where they matter for encoding: BPE, byte fallback for anything
  // unseen, digits split, whitespace kept as written, unk/bos/eos = 0/1/2 and no pad.
  const std::unordered_map<std::string, std::string> spec = {
      {"model_type", "bpe"},
      {"vocab_size", std::to_string(vocab_size)},
      {"byte_fallback", "true"},
      {"character_coverage", "1.0"},
      {"normalization_rule_name", "identity"},
      {"add_dummy_prefix", "true"},
      {"remove_extra_whitespaces", "false"},
      {"split_digits", "true"},
      {"allow_whitespace_only_pieces", "true"},
      {"unk_id", "0"},
      {"bos_id", "1"},
      {"eos_id", "2"},
      {"pad_id", "-1"},
      {"num_threads", "1"},
      {"minloglevel", "2"},
  };
  const auto corpus = prompt_corpus();
  VectorIterator sentences(corpus);
  std::string model;
  const auto status = sentencepiece::SentencePieceTrainer::Train(spec, &sentences, &model);
  if (!status.ok()) fail(dir, "tokenizer.model", "SentencePiece training failed: " + status.ToString());

  io::write_file_atomic((fs::path(dir) / "tokenizer.model").string(), model);
  io::write_file_atomic((fs::path(dir) / "tokenizer_config.json").string(), tokenizer_config_json());
  io::write_file_atomic((fs::path(dir) / "special_tokens_map.json").string(), special_tokens_map_json());

  const Tokenizer tokenizer(dir);
  tokenizer.level_token_ids();  // throws naming the level word that is not a single piece
  if (tokenizer.vocab_size() != vocab_size)
    fail(dir, "tokenizer.model",
         "trained " + std::to_string(tokenizer.vocab_size()) + " pieces, asked for " + std::to_string(vocab_size));
  return tokenizer.vocab_size();
}

}  // namespace qalign
