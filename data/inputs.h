#pragma once
// What a user passes to `qalign score`: files, folders (recursed, sorted) and @lists (one path
// per line), expanded to the files to score, in order.
#include <string>
#include <vector>

namespace qalign::data {

// Image and video extensions a folder walk picks up (files named directly are always taken).
bool is_media_path(const std::string& path);

std::vector<std::string> expand_inputs(const std::vector<std::string>& args);

}  // namespace qalign::data
