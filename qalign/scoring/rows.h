#pragma once
// The rows `qalign score` writes: one JSON object per input (input, task, media, score, score01,
// level, probs, error), and the same fields as CSV.
#include <nlohmann/json.hpp>
#include <string>

#include "qalign/prompts.h"
#include "qalign/scoring.h"

namespace qalign::scoring {

enum class RowFormat { kJsonLines, kCsv };
// By the output file's extension: .jsonl / .ndjson or .csv; anything else fails naming --out.
RowFormat row_format_of(const std::string& path);

// Row b of a scored batch; `error` is null. A non-finite score makes it a failed row instead,
// its error naming the input and the problem.
nlohmann::ordered_json scored_row(const std::string& input, Task task, Media media, const LevelScores& s, int64_t b);
// An input that could not be scored: the numbers null, `error` saying why.
nlohmann::ordered_json failed_row(const std::string& input, Task task, Media media, const std::string& error);

std::string csv_header();
std::string csv_line(const nlohmann::ordered_json& row);

}  // namespace qalign::scoring
