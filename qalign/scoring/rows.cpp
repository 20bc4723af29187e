#include "qalign/scoring/rows.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "qalign/base/error.h"
#include "qalign/io/csv.h"

namespace qalign::scoring {

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
  nlohmann::ordered_json row = {{"input", input},
                                {"task", task_name(task)},
                                {"media", media_name(media)},
                                {"score", s.score5[b].item<double>()},
                                {"score01", s.score01[b].item<double>()}};
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
  return {{"input", input},     {"task", task_name(task)}, {"media", media_name(media)}, {"score", nullptr},
          {"score01", nullptr}, {"level", nullptr},        {"probs", nullptr},           {"error", error}};
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
  std::string line;
  for (const char* key : {"input", "task", "media", "score", "score01", "level"}) line += csv_field(row.at(key)) + ",";
  const auto& probs = row.at("probs");
  for (const char* w : kLevelWords) line += csv_field(probs.is_null() ? nlohmann::ordered_json() : probs.at(w)) + ",";
  return line + csv_field(row.at("error")) + "\n";
}

}  // namespace qalign::scoring
