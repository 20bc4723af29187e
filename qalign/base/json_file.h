#pragma once
// JSON read in one pass (a SAX reader building the tree: time linear in the text, nesting
// bounded), from files whose size is bounded before any byte is read; errors name the file.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace qalign::io {

// No file we read nests more than a few levels; nlohmann's dump, copy and comparison recurse
// once per level, so a hostile file nested a million deep would overflow the stack.
constexpr int kMaxJsonDepth = 64;

// Files read whole into a tree (config.json, tokenizer_config.json, checkpoint indexes, trainer
// states): kilobytes in practice, and the tree costs up to ~15 bytes per byte of text.
constexpr uint64_t kMaxJsonFileBytes = 16ull << 20;

// `text` parsed as JSON. Bad syntax throws nlohmann's exceptions (callers word them); nesting
// deeper than kMaxJsonDepth throws qalign::Error naming `source`. A repeated key keeps its last
// value, as in Python's json.
nlohmann::json parse_json(std::string_view text, const std::string& source);

// The file parsed; larger than `max_bytes` ("... above the 16.0 MiB limit for <what>") or invalid
// JSON throws naming the file.
nlohmann::json read_json_file(const std::string& path, uint64_t max_bytes = kMaxJsonFileBytes,
                              const std::string& what = "a JSON settings file");

// Each element of the file's top-level array, parsed alone and handed over in order, so memory
// holds one element's tree at a time. A file larger than `max_bytes`, bad syntax, or a top level
// other than an array ("FILE: expected <what>, got object") throws naming the file.
void for_each_json_array_element(const std::string& path, uint64_t max_bytes, const std::string& what,
                                 const std::function<void(size_t index, nlohmann::json&& element)>& each);

// Each member of the top-level object of `text`, as for_each_json_array_element (a repeated key
// is handed over again). Bad syntax throws nlohmann's exceptions, as parse_json does.
void for_each_json_member(std::string_view text, const std::string& source, const std::string& what,
                          const std::function<void(std::string& key, nlohmann::json&& value)>& each);

}  // namespace qalign::io
