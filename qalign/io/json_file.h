#pragma once
// A JSON file read whole; a parse error names the file.
#include <nlohmann/json.hpp>

#include <string>

namespace qalign::io {

nlohmann::json read_json_file(const std::string& path);

}  // namespace qalign::io
