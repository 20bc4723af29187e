#pragma once
// The rows `qalign score` writes: one JSON object per input (input, task, media, score, score01,
// level, probs, error), and the same fields as CSV. A name that is not UTF-8 (JSON holds only
// text) has "input" with its odd bytes escaped as \xHH and "input_bytes", the name's bytes in hex,
// right after it; the CSV's input column and the keep list hold the name's bytes as they are.
#include <nlohmann/json.hpp>
#include <optional>
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

// The exact name of a row's input (from "input_bytes" when there is one).
std::string row_input(const nlohmann::ordered_json& row);
// The keep list's line for a kept row: its input's exact name and "\n". nullopt, with an error
// logged naming it, when the name holds a line break, which one name per line cannot hold.
std::optional<std::string> keep_list_line(const nlohmann::ordered_json& row);

std::string csv_header();
std::string csv_line(const nlohmann::ordered_json& row);

}  // namespace qalign::scoring
