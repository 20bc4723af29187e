#include "qalign/scoring/job_record.h"

#include <cstdio>
#include <filesystem>

#include "qalign/base/utf8.h"
#include "qalign/scoring/eval_folder.h"

namespace qalign::scoring {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

namespace {

// Stamps of the @lists that are files. A pipe has none to give: a list read from it is checked by
// the digest of the names when the job is done.
ordered_json list_stamps(const std::vector<std::string>& inputs) {
  ordered_json stamps = ordered_json::object();
  for (const auto& a : inputs) {
    std::error_code ec;
    if (a.size() > 1 && a[0] == '@' && fs::is_regular_file(a.substr(1), ec)) stamps.update(file_stamps(a.substr(1)));
  }
  return stamps;
}

ordered_json stamps_of(const std::string& path) { return path.empty() ? ordered_json::object() : file_stamps(path); }

// JSON text holds only UTF-8: a name that is not is recorded escaped, with its bytes in hex.
ordered_json text_of(const std::string& s) {
  return is_utf8(s) ? s : utf8_escaped(s) + " (bytes " + hex_bytes(s) + ")";
}

std::string shown(const ordered_json& v) {
  if (v.is_null()) return "(none)";
  if (v.is_string()) return v.get<std::string>().empty() ? "(none)" : v.get<std::string>();
  if (v.is_array()) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + shown(x);
    return s;
  }
  return v.dump();
}

}  // namespace

ordered_json job_record(const ScoreJob& o) {
  ordered_json inputs = ordered_json::array();
  for (const auto& a : o.inputs) inputs.push_back(text_of(a));
  return {{"inputs", inputs},
          {"input lists", list_stamps(o.inputs)},
          {"model", text_of(o.model)},
          {"model files", stamps_of(o.model)},
          {"lora", text_of(o.lora)},
          {"lora files", stamps_of(o.lora)},
          {"tokenizer", text_of(o.tokenizer)},
          {"tokenizer files", stamps_of(o.tokenizer)},
          {"task", o.task},
          {"prompt", o.prompt},
          {"dtype", o.dtype},
          {"quantize", model::describe(o.quantize)},
          {"threshold", o.threshold ? ordered_json(*o.threshold) : ordered_json()},
          {"keep list", text_of(o.keep_list)}};
}

ordered_json without_stamps(const ordered_json& record) {
  ordered_json out = ordered_json::object();
  for (const auto& [key, value] : record.items())
    if (!value.is_object()) out[key] = value;
  return out;
}

std::optional<Difference> first_difference(const ordered_json& before, const ordered_json& now) {
  for (const auto& [key, value] : now.items()) {
    const bool had = before.is_object() && before.contains(key);
    const ordered_json old = had ? before[key] : ordered_json();
    if (had && old == value) continue;
    if (!value.is_object() || !old.is_object()) return Difference{key, had ? shown(old) : "absent", shown(value)};
    ordered_json names = value;
    names.update(old);
    for (const auto& item : names.items()) {
      const auto there = old.contains(item.key()) ? shown(old[item.key()]) : "absent";
      const auto here = value.contains(item.key()) ? shown(value[item.key()]) : "absent";
      if (there != here) return Difference{key + ": " + item.key(), there, here};
    }
  }
  return std::nullopt;
}

void InputDigest::add(const std::string& name) {
  for (const char c : name) hash_ = (hash_ ^ static_cast<uint8_t>(c)) * 1099511628211ull;
  hash_ *= 1099511628211ull;  // a NUL byte, which no name holds, ends each: "ab","c" is not "a","bc"
  ++count_;
}

ordered_json InputDigest::value() const {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash_));
  return {{"count", count_}, {"fnv1a64", hex}};
}

}  // namespace qalign::scoring
