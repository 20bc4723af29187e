#pragma once
// File names on Linux are bytes, not text: JSON (nlohmann's dump) refuses the ones that are not
// UTF-8. These write such a name losslessly: readable text with the odd bytes escaped, and the
// exact bytes as hex for a script to map back to the file.
#include <optional>
#include <string>

namespace qalign {

// Whether `s` is well-formed UTF-8 (what nlohmann::json accepts in a string).
bool is_utf8(const std::string& s);
// `s` with each byte outside well-formed UTF-8 sequences written as "\xHH" (valid UTF-8).
std::string utf8_escaped(const std::string& s);
// Lower-case hex of every byte of `s`, and back (nullopt when `hex` is not such a text).
std::string hex_bytes(const std::string& s);
std::optional<std::string> from_hex_bytes(const std::string& hex);

}  // namespace qalign
