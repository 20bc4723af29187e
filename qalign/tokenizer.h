#pragma once
// The LLaMA SentencePiece tokenizer as the Q-Align authors call it: Hugging Face's slow
// LlamaTokenizer of transformers 4.36, with its two `legacy` behaviours, its special-token
// splitting and its decode rules, reproduced id for id (tests/fixtures/llama2-tokenizer).
//
// Vocabulary used below: a "piece" is a SentencePiece vocabulary entry ("▁The", "<0x0A>"); a
// "special token" is one of bos/eos/unk/pad (and additional_special_tokens), recognised as a
// whole when written in text ("</s>" → 2).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace qalign {

// Placeholder id for one image (or one video's frames) in a tokenised prompt, and its text.
constexpr int64_t kImageTokenIndex = -200;
inline constexpr const char* kImageToken = "<|image|>";

// The five answer words, best first; the scorer reads their logits in this order.
inline const std::vector<std::string>& level_words() {
  static const std::vector<std::string> words = {"excellent", "good", "fair", "poor", "bad"};
  return words;
}

class Tokenizer {
 public:
  // `path` is a folder holding tokenizer.model (plus tokenizer_config.json and
  // special_tokens_map.json when present, as save_pretrained writes them) or a tokenizer.model
  // file, which then gets LlamaTokenizer's defaults (bos <s>, eos </s>, unk <unk>, no pad,
  // add_bos_token, legacy=true).
  explicit Tokenizer(const std::string& path);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  // HF `tokenize(text)`: pieces and special tokens, no BOS/EOS.
  std::vector<std::string> tokenize(const std::string& text) const;
  // HF `tokenizer(text).input_ids`; with add_special_tokens=false, `encode(text,
  // add_special_tokens=False)`. BOS/EOS are added as add_bos_token/add_eos_token say.
  std::vector<int64_t> encode(const std::string& text, bool add_special_tokens = true) const;
  // HF `decode(ids, skip_special_tokens)` (no clean-up of spaces, as the configs ask).
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = false) const;
  // mm_utils.tokenizer_image_token: each chunk between "<|image|>" tokenised on its own, one
  // kImageTokenIndex between chunks, the chunks' BOS dropped after the first one.
  std::vector<int64_t> tokenizer_image_token(const std::string& prompt) const;

  // HF convert_tokens_to_ids: special tokens first, then the piece; unknown pieces → unk_id().
  int64_t token_id(const std::string& token) const;
  // HF convert_ids_to_tokens for one id in [0, vocab_size()).
  std::string id_to_token(int64_t id) const;
  // Ids of the five level words (excellent … bad): `tokenizer(word).input_ids[1]`, which must be
  // a single known piece "▁word"; throws naming the tokenizer file otherwise.
  std::vector<int64_t> level_token_ids() const;
  // `tokenizer(word).input_ids[1]` as the eval scripts read it: the first piece of "▁word",
  // even when the word takes several pieces ("moderate" → "▁moder").
  int64_t word_token_id(const std::string& word) const;

  int64_t vocab_size() const;
  int64_t bos_id() const { return bos_id_; }
  int64_t eos_id() const { return eos_id_; }
  int64_t unk_id() const { return unk_id_; }
  // The configured pad token, or unk when none is set: train_mem.py sets pad_token = unk_token.
  int64_t pad_id() const { return pad_id_; }
  bool legacy() const { return legacy_; }
  bool add_bos_token() const { return add_bos_; }
  bool add_eos_token() const { return add_eos_; }
  // tokenizer_config.json's model_max_length (HF's 1e30 "unlimited" is clamped to INT64_MAX).
  int64_t model_max_length() const { return model_max_length_; }
  // The tokenizer.model path, for messages.
  const std::string& model_path() const { return model_path_; }

 private:
  struct Special {
    std::string content;
    int64_t id;
  };
  std::vector<std::string> tokenize_chunks(const std::string& text) const;
  std::vector<std::string> sp_tokenize(const std::string& chunk) const;
  std::string sp_decode(const std::vector<std::string>& pieces) const;
  std::string tokens_to_string(std::vector<std::string> tokens) const;
  const Special* special_by_content(const std::string& content) const;
  bool is_special_id(int64_t id) const;

  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::string model_path_;
  bool legacy_ = true;
  bool add_bos_ = true;
  bool add_eos_ = false;
  int64_t model_max_length_ = INT64_MAX;
  int64_t bos_id_ = 1, eos_id_ = 2, unk_id_ = 0, pad_id_ = 0;
  std::string unk_token_ = "<unk>";
  size_t unk_token_length_ = 0;    // pieces of unk_token_ when encoded as text (legacy=false trick)
  std::vector<Special> specials_;  // every token split out of text, longest first
};

}  // namespace qalign
