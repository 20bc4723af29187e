#pragma once
// Files whose size is checked before they are read: a parser's memory grows with its input (a
// JSON tree ~15x the text, yaml-cpp's nodes ~200x), so a hostile or mistaken multi-megabyte
// config would exhaust memory long before its content could be refused.
#include <cstdint>
#include <string>

namespace qalign::io {

// Throws "PATH: 25.0 MiB, above the 1.0 MiB limit for <what>" when the regular file at `path`
// holds more than `max_bytes` (and, as read_file does, when it is missing or not a plain file).
void check_file_size(const std::string& path, uint64_t max_bytes, const std::string& what);

// The whole file after check_file_size; a file that grows past the limit while read fails too.
std::string read_file_at_most(const std::string& path, uint64_t max_bytes, const std::string& what);

// "512 bytes", "3.4 MiB", "1.0 GiB".
std::string byte_count_text(uint64_t bytes);

}  // namespace qalign::io
