#include "tools/byte_size.h"

#include <cctype>
#include <map>

#include "qalign/base/error.h"

namespace qalign::tools {

int64_t parse_byte_size(const std::string& text, const std::string& option) {
  size_t digits = 0;
  while (digits < text.size() && (std::isdigit(static_cast<unsigned char>(text[digits])) || text[digits] == '.'))
    ++digits;
  static const std::map<std::string, double> units = {
      {"", 1},     {"B", 1},      {"KB", 1e3},        {"MB", 1e6},
      {"GB", 1e9}, {"KiB", 1024}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}};
  const auto unit = units.find(text.substr(digits));
  double number = 0;
  try {
    if (digits > 0) number = std::stod(text.substr(0, digits));
  } catch (const std::exception&) {
    digits = 0;  // "." alone
  }
  if (digits == 0 || unit == units.end()) fail(option, text, "expected a size such as 5GB, 500MB or 2GiB");
  const double bytes = number * unit->second;
  if (bytes < 1) fail(option, text, "must be positive");
  if (bytes >= 9.2e18) fail(option, text, "too large: at most 9.2 EB");  // past int64, it would wrap
  return static_cast<int64_t>(bytes);
}

}  // namespace qalign::tools
