#include "tools/byte_size.h"

#include <charconv>
#include <map>

#include "qalign/base/error.h"

namespace qalign::tools {

int64_t parse_byte_size(const std::string& text, const std::string& option) {
  static const std::map<std::string, int64_t> units = {{"", 1},
                                                       {"B", 1},
                                                       {"KB", 1000},
                                                       {"MB", 1000000},
                                                       {"GB", 1000000000},
                                                       {"KiB", int64_t{1} << 10},
                                                       {"MiB", int64_t{1} << 20},
                                                       {"GiB", int64_t{1} << 30}};
  // A whole number then a unit, nothing else: "1.2.3GB" or "1.5GB" would otherwise read as a
  // size the user did not write (transformers' convert_file_size_to_int takes whole numbers too).
  const auto digits = text.find_first_not_of("0123456789");
  const auto number_text = text.substr(0, digits);
  const auto unit = units.find(digits == std::string::npos ? "" : text.substr(digits));
  if (number_text.empty() || unit == units.end())
    fail(option, text, "expected a size such as 5GB, 500MB or 2GiB: a whole number, then a unit");
  int64_t number = 0;
  const auto parsed = std::from_chars(number_text.data(), number_text.data() + number_text.size(), number);
  int64_t bytes = 0;
  if (parsed.ec == std::errc::result_out_of_range || __builtin_mul_overflow(number, unit->second, &bytes))
    fail(option, text, "too large: at most 9.2 EB");  // past int64, it would wrap
  if (bytes < 1) fail(option, text, "must be positive");
  return bytes;
}

}  // namespace qalign::tools
