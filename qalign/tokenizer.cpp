#include "qalign/tokenizer.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "qalign/base/atomic_file.h"
#include "qalign/base/error.h"
#include "qalign/base/json_file.h"
#include "qalign/base/text.h"

namespace qalign {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kSpaceSymbol = "\xE2\x96\x81";  // "▁", SentencePiece's space

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size()))
    s.replace(pos, from.size(), to);
  return s;
}

// A special-token entry is written either as "<s>" or as an AddedToken dict {"content": "<s>",
// ...}; null means "no such token".
std::optional<std::string> token_content(const json& value, const std::string& file, const std::string& field) {
  if (value.is_null()) return std::nullopt;
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("content") && value["content"].is_string())
    return value["content"].get<std::string>();
  fail(file, field, "expected a string, an object with \"content\", or null");
}

// LlamaTokenizer's constructor arguments that matter here, after from_pretrained has merged
// tokenizer_config.json and then special_tokens_map.json (the map wins).
struct TokenizerSettings {
  std::map<std::string, std::optional<std::string>> named = {
      {"bos_token", "<s>"}, {"eos_token", "</s>"}, {"unk_token", "<unk>"}, {"pad_token", {}}};
  std::vector<std::string> additional;
  std::map<int64_t, std::string> added_tokens;  // added_tokens_decoder: id → content
  bool add_bos = true, add_eos = false, legacy = true;
  int64_t model_max_length = INT64_MAX;
};

void read_special_tokens(const json& j, const std::string& file, TokenizerSettings* s) {
  for (auto& [key, value] : s->named)
    if (j.contains(key)) value = token_content(j[key], file, key);
  if (j.contains("additional_special_tokens")) {
    const json& list = j["additional_special_tokens"];
    if (!list.is_array()) fail(file, "additional_special_tokens", "expected a list");
    s->additional.clear();
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string field = "additional_special_tokens[" + std::to_string(i) + "]";
      auto content = token_content(list[i], file, field);
      if (!content) fail(file, field, "must not be null");
      s->additional.push_back(*content);
    }
  }
}

bool read_bool(const json& j, const std::string& key, bool fallback, const std::string& file) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_boolean()) fail(file, key, "expected true or false");
  return j[key].get<bool>();
}

void read_config(const std::string& file, TokenizerSettings* s) {
  const json j = io::read_json_file(file);
  if (!j.is_object()) fail(file, "", "expected a JSON object");
  s->add_bos = read_bool(j, "add_bos_token", s->add_bos, file);
  s->add_eos = read_bool(j, "add_eos_token", s->add_eos, file);
  // transformers 4.36: a missing or null `legacy` means legacy=true (with a warning).
  s->legacy = read_bool(j, "legacy", true, file);
  if (j.contains("model_max_length") && !j["model_max_length"].is_null()) {
    const json& m = j["model_max_length"];
    if (!m.is_number()) fail(file, "model_max_length", "expected a number");
    // HF writes 1e30 for "no limit".
    const double v = m.get<double>();
    if (v < 1) fail(file, "model_max_length", "must be positive");
    s->model_max_length = v >= 9.2e18 ? INT64_MAX : static_cast<int64_t>(v);
  }
  read_special_tokens(j, file, s);
  if (j.contains("added_tokens_decoder")) {
    const json& added = j["added_tokens_decoder"];
    if (!added.is_object()) fail(file, "added_tokens_decoder", "expected an object");
    for (const auto& [key, entry] : added.items()) {
      const std::string field = "added_tokens_decoder." + key;
      int64_t id = 0;
      try {
        size_t used = 0;
        id = std::stoll(key, &used);
        if (used != key.size() || id < 0) throw std::invalid_argument(key);
      } catch (const std::exception&) {
        fail(file, field, "the key must be a token id");
      }
      auto content = token_content(entry, file, field);
      if (!content) fail(file, field, "must not be null");
      if (!entry.is_object() || !read_bool(entry, "special", false, file))
        fail(file, field, "only special added tokens are supported");
      for (const char* flag : {"lstrip", "rstrip", "single_word"})
        if (read_bool(entry, flag, false, file))
          fail(file, field + "." + flag, "stripping/single-word added tokens are not supported");
      s->added_tokens[id] = *content;
    }
  }
}

}  // namespace

Tokenizer::Tokenizer(const std::string& path) : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
  TokenizerSettings settings;
  if (fs::is_directory(path)) {
    model_path_ = (fs::path(path) / "tokenizer.model").string();
    if (!fs::exists(model_path_)) fail(model_path_, "", "missing: a tokenizer folder must hold tokenizer.model");
    const std::string config = (fs::path(path) / "tokenizer_config.json").string();
    const std::string map = (fs::path(path) / "special_tokens_map.json").string();
    if (fs::exists(config)) read_config(config, &settings);
    if (fs::exists(map)) {
      const json j = io::read_json_file(map);
      if (!j.is_object()) fail(map, "", "expected a JSON object");
      read_special_tokens(j, map, &settings);
    }
  } else {
    model_path_ = path;
    if (!fs::exists(model_path_)) fail(model_path_, "", "no such tokenizer file or folder");
  }
  legacy_ = settings.legacy;
  add_bos_ = settings.add_bos;
  add_eos_ = settings.add_eos;
  model_max_length_ = settings.model_max_length;

  std::string proto = io::read_file(model_path_);
  if (!legacy_) {
    // legacy=false loads the model with normalizer_spec.add_dummy_prefix = false. Appending a
    // second ModelProto.normalizer_spec (field 3) holding only add_dummy_prefix (field 3) = 0
    // makes the protobuf parser merge it in, exactly as HF's MergeFrom does.
    proto += std::string("\x1A\x02\x18\x00", 4);
  }
  const auto status = sp_->LoadFromSerializedProto(proto);
  if (!status.ok()) fail(model_path_, "", "not a SentencePiece model: " + status.ToString());

  const int64_t vocab = vocab_size();
  for (const auto& [id, content] : settings.added_tokens)
    if (id >= vocab)
      fail(model_path_, "added token " + content,
           "id " + std::to_string(id) + " lies beyond the SentencePiece vocabulary");

  // Special tokens and their ids: added_tokens_decoder first, then the model's own piece.
  std::vector<std::string> contents;
  for (const auto& [key, value] : settings.named)
    if (value) contents.push_back(*value);
  contents.insert(contents.end(), settings.additional.begin(), settings.additional.end());
  for (const auto& content : contents) {
    if (special_by_content(content)) continue;
    int64_t id = -1;
    for (const auto& [added_id, added] : settings.added_tokens)
      if (added == content) id = added_id;
    if (id < 0 && sp_->IdToPiece(sp_->PieceToId(content)) == content) id = sp_->PieceToId(content);
    if (id < 0)
      fail(model_path_, "special token " + content, "is neither a piece of the model nor in added_tokens_decoder");
    specials_.push_back({content, id});
  }
  for (const auto& [id, content] : settings.added_tokens)
    if (!special_by_content(content))
      fail(model_path_, "added token " + content,
           "is not one of the special tokens (bos/eos/unk/pad/additional); not supported");
  std::stable_sort(specials_.begin(), specials_.end(),
                   [](const Special& a, const Special& b) { return a.content.size() > b.content.size(); });
  for (const char* key : {"bos_token", "eos_token", "unk_token"})
    if (!settings.named[key]) fail(model_path_, key, "must be set");
  bos_id_ = special_by_content(*settings.named["bos_token"])->id;
  eos_id_ = special_by_content(*settings.named["eos_token"])->id;
  unk_token_ = *settings.named["unk_token"];
  unk_id_ = special_by_content(unk_token_)->id;
  pad_id_ = settings.named["pad_token"] ? special_by_content(*settings.named["pad_token"])->id : unk_id_;
  std::vector<std::string> unk_pieces;
  sp_->Encode(unk_token_, &unk_pieces);
  unk_token_length_ = unk_pieces.size();
}

Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

int64_t Tokenizer::vocab_size() const { return sp_->GetPieceSize(); }

const Tokenizer::Special* Tokenizer::special_by_content(const std::string& content) const {
  for (const auto& s : specials_)
    if (s.content == content) return &s;
  return nullptr;
}

bool Tokenizer::is_special_id(int64_t id) const {
  return std::any_of(specials_.begin(), specials_.end(), [id](const Special& s) { return s.id == id; });
}

// HF _tokenize: one text chunk without special tokens → pieces.
std::vector<std::string> Tokenizer::sp_tokenize(const std::string& chunk) const {
  std::vector<std::string> pieces;
  if (legacy_ || !(starts_with(chunk, kSpaceSymbol) || starts_with(chunk, " "))) {
    sp_->Encode(chunk, &pieces);
    return pieces;
  }
  // A chunk that starts with a space: HF encodes "<unk>" + chunk and drops unk's pieces, so the
  // space is tokenised as in the middle of a text rather than at its start.
  sp_->Encode(unk_token_ + chunk, &pieces);
  if (pieces.size() >= unk_token_length_)
    pieces.erase(pieces.begin(), pieces.begin() + static_cast<ptrdiff_t>(unk_token_length_));
  return pieces;
}

// PreTrainedTokenizer.tokenize: split out special tokens (leftmost, longest), tokenise the rest.
std::vector<std::string> Tokenizer::tokenize_chunks(const std::string& text) const {
  std::vector<std::string> out;
  size_t start = 0, pos = 0;
  auto flush = [&](size_t end) {
    if (end > start) {
      auto pieces = sp_tokenize(text.substr(start, end - start));
      out.insert(out.end(), pieces.begin(), pieces.end());
    }
  };
  while (pos < text.size()) {
    const Special* hit = nullptr;
    for (const auto& s : specials_)
      if (text.compare(pos, s.content.size(), s.content) == 0) {
        hit = &s;
        break;
      }
    if (!hit) {
      ++pos;
      continue;
    }
    flush(pos);
    out.push_back(hit->content);
    pos += hit->content.size();
    start = pos;
  }
  flush(text.size());
  return out;
}

std::vector<std::string> Tokenizer::tokenize(const std::string& text) const {
  if (legacy_ || text.empty()) return tokenize_chunks(text);
  // legacy=false: the model has no dummy prefix, so the prefix is written by hand, and dropped
  // again when a special token follows it directly.
  auto tokens = tokenize_chunks(kSpaceSymbol + replace_all(text, kSpaceSymbol, " "));
  if (tokens.size() > 1 && tokens[0] == kSpaceSymbol && special_by_content(tokens[1])) tokens.erase(tokens.begin());
  return tokens;
}

int64_t Tokenizer::token_id(const std::string& token) const {
  if (const Special* s = special_by_content(token)) return s->id;
  return sp_->PieceToId(token);
}

std::string Tokenizer::id_to_token(int64_t id) const {
  if (id < 0 || id >= vocab_size())
    fail(model_path_, "token id", std::to_string(id) + " is outside [0, " + std::to_string(vocab_size()) + ")");
  for (const auto& s : specials_)
    if (s.id == id) return s.content;
  return sp_->IdToPiece(static_cast<int>(id));
}

std::vector<int64_t> Tokenizer::encode(const std::string& text, bool add_special_tokens) const {
  std::vector<int64_t> ids;
  if (add_special_tokens && add_bos_) ids.push_back(bos_id_);
  for (const auto& token : tokenize(text)) ids.push_back(token_id(token));
  if (add_special_tokens && add_eos_) ids.push_back(eos_id_);
  return ids;
}

std::string Tokenizer::sp_decode(const std::vector<std::string>& pieces) const {
  std::string text;
  const auto status = sp_->Decode(pieces, &text);
  if (!status.ok()) fail(model_path_, "decode", status.ToString());
  return text;
}

// LlamaTokenizer.convert_tokens_to_string: special tokens are copied verbatim, the runs between
// them decoded by SentencePiece; legacy=true puts a space before a special token that follows text.
std::string Tokenizer::tokens_to_string(std::vector<std::string> tokens) const {
  if (starts_with(tokens[0], kSpaceSymbol)) tokens[0] = tokens[0].substr(kSpaceSymbol.size());
  std::string out;
  std::vector<std::string> run;
  bool prev_special = false;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (special_by_content(tokens[i])) {
      if (!prev_special && i != 0 && legacy_) out += " ";
      out += sp_decode(run) + tokens[i];
      run.clear();
      prev_special = true;
    } else {
      run.push_back(tokens[i]);
      prev_special = false;
    }
  }
  return out + sp_decode(run);
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  for (int64_t id : ids) {
    const std::string token = id_to_token(id);
    if (skip_special_tokens && is_special_id(id)) continue;
    tokens.push_back(token);
  }
  return tokens.empty() ? std::string() : tokens_to_string(std::move(tokens));
}

std::vector<int64_t> Tokenizer::tokenizer_image_token(const std::string& prompt) const {
  const std::string marker = kImageToken;
  std::vector<std::vector<int64_t>> chunks;
  for (size_t start = 0;;) {
    const size_t end = prompt.find(marker, start);
    const std::string chunk = prompt.substr(start, end == std::string::npos ? end : end - start);
    chunks.push_back(chunk.empty() ? std::vector<int64_t>{} : encode(chunk));
    if (end == std::string::npos) break;
    start = end + marker.size();
  }
  // Upstream keeps the first chunk's BOS and then cuts `offset` ids off every later chunk; the
  // cut applies only when the first chunk is non-empty and starts with BOS.
  std::vector<int64_t> ids;
  size_t offset = 0;
  if (!chunks[0].empty() && chunks[0][0] == bos_id_) {
    offset = 1;
    ids.push_back(bos_id_);
  }
  for (size_t i = 0; i < chunks.size(); ++i) {
    if (i > 0) ids.push_back(kImageTokenIndex);
    if (chunks[i].size() > offset) ids.insert(ids.end(), chunks[i].begin() + offset, chunks[i].end());
  }
  return ids;
}

std::vector<int64_t> Tokenizer::level_token_ids() const {
  std::vector<int64_t> ids;
  for (const auto& word : level_words()) {
    const auto pieces = tokenize(word);
    if (pieces.size() != 1 || token_id(pieces[0]) == unk_id_) {
      std::string got;
      for (const auto& p : pieces) got += (got.empty() ? "" : " ") + p;
      fail(model_path_, "level word \"" + word + "\"",
           "tokenises to [" + got + "]; scoring needs it as one known piece");
    }
    ids.push_back(token_id(pieces[0]));
  }
  return ids;
}

int64_t Tokenizer::word_token_id(const std::string& word) const {
  const auto pieces = tokenize(word);
  if (pieces.empty()) fail(model_path_, "word \"" + word + "\"", "tokenises to nothing");
  return token_id(pieces[0]);
}

}  // namespace qalign
