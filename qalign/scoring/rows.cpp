#include "qalign/scoring/rows.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "qalign/base/error.h"
#include "qalign/base/log.h"
#include "qalign/base/utf8.h"
#include "qalign/io/csv.h"

namespace qalign::scoring {

namespace {

// "input", and "input_bytes" (hex) after it when the name is not UTF-8: "input" then shows it
// with its odd bytes escaped (\xHH), and the hex gives the exact name back.
nlohmann::ordered_json input_fields(const std::string& input) {
  if (is_utf8(input)) return {{"input", input}};
  return {{"input", utf8_escaped(input)}, {"input_bytes", hex_bytes(input)}};
}

}  // namespace

RowFormat row_format_of(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  if (ext == ".jsonl" || ext == ".ndjson") return RowFormat::kJsonLines;
  if (ext == ".csv") return RowFormat::kCsv;
  fail("--out", path, "expected a .jsonl, .ndjson or .csv file name, got \"" + ext + "\"");
}

nlohmann::ordered_json scored_row(const std::string& input, Task task, Media media, const LevelScores& s, int64_t b) {
  const std::string nonfinite = nonfinite_score(s, b);
  if (!nonfinite.empty()) return failed_row(input, task, media, input + ": " + nonfinite);
  nlohmann::ordered_json row = input_fields(input);
  row["task"] = task_name(task);
  row["media"] = media_name(media);
  row["score"] = s.score5[b].item<double>();
  row["score01"] = s.score01[b].item<double>();
  if (s.probs.defined()) {
    row["level"] = kLevelWords[s.level[b].item<int64_t>()];
    nlohmann::ordered_json probs = nlohmann::ordered_json::object();
    for (size_t k = 0; k < kLevelWords.size(); ++k) probs[kLevelWords[k]] = s.probs[b][k].item<double>();
    row["probs"] = probs;
  } else {
    row["level"] = nullptr;
    row["probs"] = nullptr;
  }
  row["error"] = nullptr;
  return row;
}

nlohmann::ordered_json failed_row(const std::string& input, Task task, Media media, const std::string& error) {
  nlohmann::ordered_json row = input_fields(input);
  row.update(nlohmann::ordered_json{{"task", task_name(task)},
                                    {"media", media_name(media)},
                                    {"score", nullptr},
                                    {"score01", nullptr},
                                    {"level", nullptr},
                                    {"probs", nullptr},
                                    {"error", utf8_escaped(error)}});
  return row;
}

std::string row_input(const nlohmann::ordered_json& row) {
  if (row.contains("input_bytes"))
    if (auto bytes = from_hex_bytes(row["input_bytes"].get<std::string>())) return *bytes;
  return row.at("input").get<std::string>();
}

std::optional<std::string> keep_list_line(const nlohmann::ordered_json& row) {
  std::string input = row_input(row);
  if (input.find_first_of("\r\n") != std::string::npos) {
    log::error("left out of the keep list: ", row["input"].dump(),
               " holds a line break, which a list of one name per line cannot hold (its row has its score)");
    return std::nullopt;
  }
  return input + "\n";
}

namespace {

std::string csv_field(const nlohmann::ordered_json& v) {
  if (v.is_null()) return "";
  return io::csv_field(v.is_string() ? v.get<std::string>() : v.dump());
}

}  // namespace

std::string csv_header() {
  std::string h = "input,task,media,score,score01,level";
  for (const char* w : kLevelWords) h += std::string(",p_") + w;
  return h + ",error\n";
}

std::string csv_line(const nlohmann::ordered_json& row) {
  // The name's exact bytes: CSV is bytes, so a name that is not UTF-8 stays the file's own.
  std::string line = io::csv_field(row_input(row)) + ",";
  for (const char* key : {"task", "media", "score", "score01", "level"}) line += csv_field(row.at(key)) + ",";
  const auto& probs = row.at("probs");
  for (const char* w : kLevelWords) line += csv_field(probs.is_null() ? nlohmann::ordered_json() : probs.at(w)) + ",";
  return line + csv_field(row.at("error")) + "\n";
}

}  // namespace qalign::scoring
