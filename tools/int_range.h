#pragma once
// An integer option's bounds, checked by CLI11 with a message naming them (CLI11's own range
// check prints "Value 0 not in range 0.000000 to 1.797...e308").
#include <CLI/CLI.hpp>

#include <string>

namespace qalign::tools {

inline CLI::Validator in_range(int min, int max) {
  return CLI::Validator(
      [min, max](std::string& text) -> std::string {
        int v = 0;
        if (!CLI::detail::lexical_cast(text, v)) return "expected an integer, got " + text;
        if (v < min) return "must be at least " + std::to_string(min) + ", got " + text;
        return v > max ? "must be at most " + std::to_string(max) + ", got " + text : std::string();
      },
      "INT in [" + std::to_string(min) + ", " + std::to_string(max) + "]");
}

}  // namespace qalign::tools
