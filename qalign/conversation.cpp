#include "qalign/conversation.h"

#include <algorithm>

#include "qalign/base/error.h"
#include "qalign/base/log.h"

namespace qalign {
namespace {

// Python's str.isspace for one code point.
bool is_python_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// Decodes the UTF-8 code point starting at s[i]; sets *len to its byte count (1 on bad bytes).
char32_t code_point_at(const std::string& s, size_t i, size_t* len) {
  const auto b = static_cast<unsigned char>(s[i]);
  size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || i + n > s.size()) {
    *len = 1;
    return 0xFFFD;
  }
  char32_t c = n == 1 ? b : b & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) c = (c << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  *len = n;
  return c;
}

// Python's str.strip() with no arguments.
std::string python_strip(const std::string& s) {
  size_t begin = 0, len = 0;
  while (begin < s.size() && is_python_space(code_point_at(s, begin, &len))) begin += len;
  size_t end = begin;
  for (size_t i = begin; i < s.size(); i += len)
    if (!is_python_space(code_point_at(s, i, &len))) end = i + len;
  return s.substr(begin, end - begin);
}

// Python's str.split(sep): every occurrence, empty parts kept.
std::vector<std::string> python_split(const std::string& s, const std::string& sep) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t pos = s.find(sep); pos != std::string::npos; pos = s.find(sep, start)) {
    parts.push_back(s.substr(start, pos - start));
    start = pos + sep.size();
  }
  parts.push_back(s.substr(start));
  return parts;
}

std::string remove_all(std::string s, const std::string& what) {
  for (size_t pos = s.find(what); pos != std::string::npos; pos = s.find(what, pos)) s.erase(pos, what.size());
  return s;
}

// target[begin:end] = value with Python's slice rules (negative bounds count from the end).
void fill_slice(std::vector<int64_t>* target, int64_t begin, int64_t end, int64_t value) {
  const auto n = static_cast<int64_t>(target->size());
  auto clamp = [n](int64_t i) { return std::clamp(i < 0 ? i + n : i, int64_t{0}, n); };
  for (int64_t i = clamp(begin); i < clamp(end); ++i) (*target)[static_cast<size_t>(i)] = value;
}

}  // namespace

const ConversationTemplate& vicuna_v1_template() {
  static const ConversationTemplate t{
      "A chat between a curious user and an artificial intelligence assistant. The assistant "
      "gives helpful, detailed, and polite answers to the user's questions.",
      true};
  return t;
}

const ConversationTemplate& mplug_owl2_template() {
  // Its system text exists upstream but TWO_NO_SYS never writes it.
  static const ConversationTemplate t{"", false};
  return t;
}

std::string render_conversation(const ConversationTemplate& tmpl, const std::vector<std::string>& messages) {
  std::string out = tmpl.with_system ? tmpl.system + tmpl.sep : std::string();
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& role = i % 2 == 0 ? tmpl.user : tmpl.assistant;
    if (messages[i].empty())
      out += role + ":";
    else
      out += role + ": " + messages[i] + (i % 2 == 0 ? tmpl.sep : tmpl.sep2);
  }
  return out;
}

std::vector<Turn> normalize_image_placeholders(std::vector<Turn> turns) {
  for (auto& turn : turns) {
    if (turn.value.find(kImageToken) == std::string::npos) continue;
    const std::string text = python_strip(remove_all(turn.value, kImageToken));
    turn.value = python_strip(std::string(kImageToken) + "\n" + text);
  }
  return turns;
}

SupervisedSample build_supervised_sample(const Tokenizer& tokenizer, std::vector<Turn> turns, bool has_image,
                                         int64_t model_max_length) {
  if (has_image) turns = normalize_image_placeholders(std::move(turns));
  // Upstream skips a leading assistant turn, then requires strict human/gpt alternation.
  if (!turns.empty() && turns[0].from == "gpt") turns.erase(turns.begin());
  const ConversationTemplate& tmpl = vicuna_v1_template();
  std::vector<std::string> messages;
  for (size_t i = 0; i < turns.size(); ++i) {
    const std::string field = "conversations[" + std::to_string(i) + "].from";
    if (turns[i].from != "human" && turns[i].from != "gpt")
      fail("training sample", field, "\"" + turns[i].from + "\" is neither \"human\" nor \"gpt\"");
    if (turns[i].from != (i % 2 == 0 ? "human" : "gpt"))
      fail("training sample", field, "turns must alternate human, gpt");
    messages.push_back(turns[i].value);
  }

  SupervisedSample sample;
  sample.prompt = render_conversation(tmpl, messages);
  auto tokenize = [&](const std::string& text) {
    return has_image ? tokenizer.tokenizer_image_token(text) : tokenizer.encode(text);
  };
  sample.input_ids = tokenize(sample.prompt);
  if (!has_image && static_cast<int64_t>(sample.input_ids.size()) > model_max_length)
    sample.input_ids.resize(static_cast<size_t>(model_max_length));
  sample.labels = sample.input_ids;

  // The mask of the authors' preprocess_v1 (after their "fix masking error"): each round is
  // re-tokenised on its own; its BOS stands for the previous round's "</s>", so the first round
  // starts at 2 and every round counts one id less. The instruction part ends with "ASSISTANT: ",
  // whose trailing "▁" is also discounted (hence -3 with images, -2 without).
  const int64_t total_len = std::count_if(sample.input_ids.begin(), sample.input_ids.end(),
                                          [&](int64_t id) { return id != tokenizer.pad_id(); });
  const std::string sep = tmpl.sep + tmpl.assistant + ": ";
  int64_t cur_len = 2;
  fill_slice(&sample.labels, 0, cur_len, kIgnoreIndex);
  for (const auto& round : python_split(sample.prompt, tmpl.sep2)) {
    if (round.empty()) break;
    const auto parts = python_split(round, sep);
    if (parts.size() != 2) break;
    const auto round_len = static_cast<int64_t>(tokenize(round).size()) - 1;
    const auto instruction_len = static_cast<int64_t>(tokenize(parts[0] + sep).size()) - (has_image ? 3 : 2);
    fill_slice(&sample.labels, cur_len, cur_len + instruction_len, kIgnoreIndex);
    cur_len += round_len;
  }
  fill_slice(&sample.labels, cur_len, static_cast<int64_t>(sample.labels.size()), kIgnoreIndex);
  if (cur_len < model_max_length && cur_len != total_len) {
    std::fill(sample.labels.begin(), sample.labels.end(), kIgnoreIndex);
    sample.tokenization_mismatch = true;
    log::warn("tokenization mismatch: ", cur_len, " vs. ", total_len, " (every label of this sample ignored)");
  }
  return sample;
}

SupervisedBatch collate_supervised(const std::vector<SupervisedSample>& samples, int64_t pad_id,
                                   int64_t model_max_length) {
  size_t longest = 0;
  for (const auto& s : samples) longest = std::max(longest, s.input_ids.size());
  const auto b = static_cast<int64_t>(samples.size());
  const auto l = std::min(static_cast<int64_t>(longest), model_max_length);
  SupervisedBatch batch;
  batch.input_ids = torch::full({b, l}, pad_id, torch::kInt64);
  batch.labels = torch::full({b, l}, kIgnoreIndex, torch::kInt64);
  auto ids = batch.input_ids.accessor<int64_t, 2>();
  auto labels = batch.labels.accessor<int64_t, 2>();
  for (int64_t i = 0; i < b; ++i) {
    const auto& s = samples[static_cast<size_t>(i)];
    const auto n = std::min(static_cast<int64_t>(s.input_ids.size()), l);
    for (int64_t t = 0; t < n; ++t) {
      ids[i][t] = s.input_ids[static_cast<size_t>(t)];
      labels[i][t] = s.labels[static_cast<size_t>(t)];
    }
  }
  batch.attention_mask = batch.input_ids.ne(pad_id);
  return batch;
}

}  // namespace qalign
