#pragma once
// One exception type for every user-facing failure: the message always names the file (or
// source) and the field, so a user can fix the input without reading our code.
#include <stdexcept>
#include <string>

namespace qalign {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Builds "SOURCE: FIELD: WHAT" (field may be empty) and throws it.
[[noreturn]] void fail(const std::string& source, const std::string& field, const std::string& what);

}  // namespace qalign
