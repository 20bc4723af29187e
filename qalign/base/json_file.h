#pragma once
// A JSON file read whole; a parse error names the file.
#include <nlohmann/json.hpp>

#include <string>

namespace qalign::io {

// No file we read nests more than a few levels; nlohmann's dump, copy and comparison recurse
// once per level, so a hostile file nested a million deep would overflow the stack.
constexpr int kMaxJsonDepth = 64;

// `text` parsed as JSON. Bad syntax throws nlohmann's exceptions (callers word them); nesting
// deeper than kMaxJsonDepth throws qalign::Error naming `source`.
nlohmann::json parse_json(const std::string& text, const std::string& source);

nlohmann::json read_json_file(const std::string& path);

}  // namespace qalign::io
