#pragma once
// Sizes on the command line (--max-shard-size, --gpu-memory).
#include <cstdint>
#include <string>

namespace qalign::tools {

// "5GB", "500MB", "10KB", "2GiB" or a byte count, read as transformers' convert_file_size_to_int
// reads them (GB = 10^9, GiB = 2^30); a malformed, non-positive or past-64-bit size fails naming
// the option.
int64_t parse_byte_size(const std::string& text, const std::string& option);

}  // namespace qalign::tools
