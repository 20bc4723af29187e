#pragma once
// Sizes on the command line (--max-shard-size, --gpu-memory).
#include <cstdint>
#include <string>

namespace qalign::tools {

// "5GB", "500MB", "10KB", "2GiB" or a byte count, read as transformers' convert_file_size_to_int
// reads them (GB = 10^9, GiB = 2^30): a whole number, then a unit. Anything else ("1.5GB",
// "1.2.3GB"), a zero or a past-64-bit size fails naming the option and the text.
int64_t parse_byte_size(const std::string& text, const std::string& option);

}  // namespace qalign::tools
