#pragma once
// Unknown-key reporting shared by the JSON and YAML readers: a misspelt key is almost always a
// typo of a known one, so the error names the nearest known key instead of only rejecting it.
#include <cstddef>
#include <string>
#include <vector>

namespace qalign::config {

// Edits (insert, delete, substitute, swap two adjacent characters) turning `a` into `b`.
size_t edit_distance(const std::string& a, const std::string& b);

// The candidate `key` most plausibly misspells: the nearest within a few edits (ignoring case),
// else the shortest candidate containing `key` (or contained in it); "" when none fits.
std::string closest_key(const std::string& key, const std::vector<std::string>& candidates);

// The `what` of an unknown-key error: "unknown key; did you mean 'x'?", or for short candidate
// lists without a close match, "unknown key; expected one of: a, b".
std::string unknown_key_message(const std::string& key, const std::vector<std::string>& candidates);

}  // namespace qalign::config
