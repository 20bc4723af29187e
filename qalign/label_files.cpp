#include "qalign/label_files.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>

#include "qalign/base/error.h"
#include "qalign/base/json_file.h"
#include "qalign/media_type.h"
#include "qalign/tokenizer.h"

namespace qalign {

namespace {

using nlohmann::json;

std::string record_field(size_t index, const std::string& field) {
  return "[" + std::to_string(index) + "]" + (field.empty() ? "" : "." + field);
}

// A finite number filling all of `text` (whitespace and a leading '+' allowed around it).
std::optional<double> try_parse_number(const std::string& text) {
  size_t b = 0, e = text.size();
  while (b < e && std::isspace(static_cast<unsigned char>(text[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(text[e - 1]))) --e;
  if (b < e && text[b] == '+') ++b;
  double v = 0;
  const auto [end, ec] = std::from_chars(text.data() + b, text.data() + e, v);
  if (b == e || ec != std::errc() || end != text.data() + e || !std::isfinite(v)) return std::nullopt;
  return v;
}

// A string field, or nullopt when absent; any other type throws.
std::optional<std::string> optional_string(const json& rec, const char* key, const std::string& source, size_t index) {
  const auto it = rec.find(key);
  if (it == rec.end()) return std::nullopt;
  if (!it->is_string())
    fail(source, record_field(index, key), std::string("expected a string, got ") + it->type_name());
  return it->get<std::string>();
}

// A score field written as a number or a numeric string, with its text.
struct ScoreField {
  double value;
  std::string text;  // the string as written, or the number as Python's json writes it
  bool is_string;
};

std::optional<ScoreField> optional_score(const json& rec, const char* key, const std::string& source, size_t index) {
  const auto it = rec.find(key);
  if (it == rec.end()) return std::nullopt;
  const std::string field = record_field(index, key);
  if (it->is_string()) {
    const std::string text = it->get<std::string>();
    return ScoreField{parse_mos(text, source, field), text, true};
  }
  if (!it->is_number() || it->is_boolean())
    fail(source, field, std::string("expected a number or a numeric string, got ") + it->type_name());
  const double v = it->get<double>();
  if (!std::isfinite(v)) fail(source, field, "not a finite number");
  return ScoreField{v, it->is_number_float() ? python_float_text(v) : it->dump(), false};
}

const json& checked_object(const json& rec, const std::string& source, size_t index) {
  if (!rec.is_object())
    fail(source, record_field(index, ""), std::string("expected an object, got ") + rec.type_name());
  return rec;
}

std::vector<Turn> read_conversations(const json& rec, const std::string& source, size_t index) {
  const auto it = rec.find("conversations");
  const std::string field = record_field(index, "conversations");
  if (it == rec.end()) fail(source, field, "missing");
  if (!it->is_array() || it->empty()) fail(source, field, "expected a non-empty array of turns");
  std::vector<Turn> turns;
  for (size_t t = 0; t < it->size(); ++t) {
    const json& turn = (*it)[t];
    const std::string turn_field = field + "[" + std::to_string(t) + "]";
    if (!turn.is_object()) fail(source, turn_field, "expected an object with \"from\" and \"value\"");
    for (const char* key : {"from", "value"}) {
      const auto v = turn.find(key);
      if (v == turn.end()) fail(source, turn_field + "." + key, "missing");
      if (!v->is_string())
        fail(source, turn_field + "." + key, std::string("expected a string, got ") + v->type_name());
    }
    Turn out{turn["from"].get<std::string>(), turn["value"].get<std::string>()};
    if (out.from != "human" && out.from != "gpt")
      fail(source, turn_field + ".from", "\"" + out.from + "\" is neither \"human\" nor \"gpt\"");
    turns.push_back(std::move(out));
  }
  return turns;
}

std::vector<std::string> read_images(const json& rec, const std::string& source, size_t index) {
  const auto it = rec.find("image");
  if (it == rec.end()) return {};
  const std::string field = record_field(index, "image");
  if (it->is_string()) {
    if (it->get<std::string>().empty()) fail(source, field, "empty path");
    return {it->get<std::string>()};
  }
  if (!it->is_array() || it->empty())
    fail(source, field, std::string("expected a path or a non-empty list of paths, got ") + it->type_name());
  std::vector<std::string> paths;
  for (size_t i = 0; i < it->size(); ++i) {
    const json& p = (*it)[i];
    if (!p.is_string() || p.get<std::string>().empty())
      fail(source, field + "[" + std::to_string(i) + "]", "expected a non-empty path");
    paths.push_back(p.get<std::string>());
  }
  return paths;
}

}  // namespace

bool TrainingRecord::is_video() const { return paths.size() == 1 && is_video_path(paths[0]); }

bool TrainingRecord::named_as_video() const { return paths.size() == 1 && has_video_extension(paths[0]); }

bool ScoredRecord::is_video() const { return is_video_path(path); }

std::string resolve_path(const std::string& folder, const std::string& rel) {
  if (folder.empty() || (!rel.empty() && rel[0] == '/')) return rel;
  return folder.back() == '/' ? folder + rel : folder + "/" + rel;
}

std::optional<std::string> mos_text_of_id(const std::string& id) {
  const size_t arrow = id.rfind("->");
  if (arrow == std::string::npos) return std::nullopt;
  return id.substr(arrow + 2);
}

double parse_mos(const std::string& text, const std::string& source, const std::string& field) {
  const auto v = try_parse_number(text);
  if (!v) fail(source, field, "\"" + text + "\" is not a number");
  return *v;
}

std::string python_float_text(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "Infinity" : "-Infinity";
  if (value == 0) return std::signbit(value) ? "-0.0" : "0.0";
  // Shortest round-trip digits d.ddd·10^exp, then laid out as repr() does: positional when
  // −4 < decpt ≤ 16 (decpt = exp + 1), else exponent with a sign and at least two digits.
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, std::fabs(value), std::chars_format::scientific);
  const std::string sci(buf, res.ptr);
  const size_t e = sci.find('e');
  const int exp = std::atoi(sci.c_str() + e + 1);
  std::string digits;
  for (size_t i = 0; i < e; ++i)
    if (sci[i] != '.') digits += sci[i];
  const int decpt = exp + 1, n = static_cast<int>(digits.size());
  std::string out;
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0)
      out = "0." + std::string(-decpt, '0') + digits;
    else if (decpt >= n)
      out = digits + std::string(decpt - n, '0') + ".0";
    else
      out = digits.substr(0, decpt) + "." + digits.substr(decpt);
  } else {
    out = digits.substr(0, 1) + (n > 1 ? "." + digits.substr(1) : "");
    char tail[16];
    std::snprintf(tail, sizeof tail, "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    out += tail;
  }
  return value < 0 ? "-" + out : out;
}

namespace {

// A label file's records one at a time: memory holds the records read, not the file's tree.
void for_each_label_record(const std::string& file, const std::function<void(size_t, json&&)>& each) {
  io::for_each_json_array_element(file, kMaxLabelFileBytes, "a JSON array of records", each);
}

}  // namespace

json read_json_array(const std::string& file) {
  json array = json::array();
  for_each_label_record(file, [&](size_t, json&& record) { array.push_back(std::move(record)); });
  return array;
}

namespace {

// Five probabilities that sum to one (within the rounding a JSON writer leaves).
std::vector<double> read_level_probs(const json& value, const std::string& source, size_t index) {
  const std::string field = record_field(index, "level_probs");
  if (!value.is_array() || value.size() != 5)
    fail(source, field, "expected a list of 5 probabilities (excellent … bad)");
  std::vector<double> probs;
  double sum = 0;
  for (const auto& v : value) {
    if (!v.is_number() || v.is_boolean()) fail(source, field, "expected numbers, got " + v.dump());
    const double p = v.get<double>();
    if (!std::isfinite(p) || p < 0 || p > 1) fail(source, field, "each probability must be in [0, 1], got " + v.dump());
    probs.push_back(p);
    sum += p;
  }
  if (std::abs(sum - 1) > 1e-6) fail(source, field, "the probabilities sum to " + std::to_string(sum) + ", not 1");
  return probs;
}

TrainingRecord parse_training_record(const json& record, const std::string& source, size_t i,
                                     const std::string& image_folder) {
  const json& rec = checked_object(record, source, i);
  TrainingRecord r;
  r.id = optional_string(rec, "id", source, i).value_or("");
  r.images = read_images(rec, source, i);
  for (const auto& p : r.images) r.paths.push_back(resolve_path(image_folder, p));
  r.conversations = read_conversations(rec, source, i);
  if (const auto gt = optional_score(rec, "gt_score", source, i)) r.gt_score = gt->value;
  r.mos = r.gt_score;
  if (rec.contains("level_probs")) r.level_probs = read_level_probs(rec["level_probs"], source, i);
  // Training ids are free-form; only one that ends in "->number" carries a MOS.
  if (const auto text = mos_text_of_id(r.id); !r.mos && text) r.mos = try_parse_number(*text);
  // The placeholder and the image field must agree: without an image upstream tokenises
  // "<|image|>" as plain text, with one and no placeholder the image is never inserted.
  const bool placeholder = std::any_of(r.conversations.begin(), r.conversations.end(), [](const Turn& t) {
    return t.from == "human" && t.value.find(kImageToken) != std::string::npos;
  });
  if (placeholder && !r.has_image())
    fail(source, record_field(i, "image"), "missing, but a human turn holds <|image|>");
  if (!placeholder && r.has_image())
    fail(source, record_field(i, "conversations"), "no human turn holds <|image|> for the record's image");
  // Only gpt turns carry labels: without one every label is masked and the loss is 0/0.
  if (std::none_of(r.conversations.begin(), r.conversations.end(), [](const Turn& t) { return t.from == "gpt"; }))
    fail(source, record_field(i, "conversations"), "no \"gpt\" turn: the record has no answer to learn");
  return r;
}

}  // namespace

std::vector<TrainingRecord> parse_training_records(const json& array, const std::string& source,
                                                   const std::string& image_folder) {
  std::vector<TrainingRecord> records;
  records.reserve(array.size());
  for (size_t i = 0; i < array.size(); ++i) records.push_back(parse_training_record(array[i], source, i, image_folder));
  return records;
}

std::vector<TrainingRecord> read_training_records(const std::string& file, const std::string& image_folder) {
  std::vector<TrainingRecord> records;
  for_each_label_record(
      file, [&](size_t i, json&& record) { records.push_back(parse_training_record(record, file, i, image_folder)); });
  return records;
}

namespace {

ScoredRecord parse_scored_record(const json& record, const std::string& source, size_t i,
                                 const std::string& image_folder) {
  const json& rec = checked_object(record, source, i);
  ScoredRecord r;
  r.id = optional_string(rec, "id", source, i).value_or("");
  // The eval scripts: llddata.get("image", llddata.get("img_path")).
  auto image = optional_string(rec, "image", source, i);
  if (!image) image = optional_string(rec, "img_path", source, i);
  if (!image) fail(source, record_field(i, "image"), "missing (neither \"image\" nor \"img_path\")");
  if (image->empty()) fail(source, record_field(i, rec.contains("image") ? "image" : "img_path"), "empty path");
  r.image = *image;
  r.path = resolve_path(image_folder, r.image);

  const auto id_text = mos_text_of_id(r.id);
  if (const auto gt = optional_score(rec, "gt_score", source, i)) {
    r.mos = gt->value;
    const bool id_agrees = !gt->is_string && id_text && try_parse_number(*id_text) == gt->value;
    r.mos_text = id_agrees ? *id_text : gt->text;
  } else if (id_text) {
    r.mos = parse_mos(*id_text, source, record_field(i, "id"));
    r.mos_text = *id_text;
  } else {
    fail(source, record_field(i, "gt_score"), "missing, and no \"id\" ending in \"->MOS\"");
  }
  if (const auto s = optional_score(rec, "std", source, i)) r.std = s->value;
  return r;
}

}  // namespace

std::vector<ScoredRecord> parse_scored_records(const json& array, const std::string& source,
                                               const std::string& image_folder) {
  std::vector<ScoredRecord> records;
  records.reserve(array.size());
  for (size_t i = 0; i < array.size(); ++i) records.push_back(parse_scored_record(array[i], source, i, image_folder));
  return records;
}

std::vector<ScoredRecord> read_scored_records(const std::string& file, const std::string& image_folder) {
  std::vector<ScoredRecord> records;
  for_each_label_record(
      file, [&](size_t i, json&& record) { records.push_back(parse_scored_record(record, file, i, image_folder)); });
  return records;
}

}  // namespace qalign
