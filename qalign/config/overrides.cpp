#include "qalign/config/overrides.h"

#include <algorithm>

#include "qalign/base/error.h"

namespace qalign::config {

namespace {

constexpr const char* kSource = "command line";

bool is_option(const std::string& arg) { return arg.size() > 2 && arg.compare(0, 2, "--") == 0; }

std::string key_value(std::string key, const std::string& value) {
  std::replace(key.begin(), key.end(), '-', '_');
  return key + "=" + value;
}

}  // namespace

std::vector<std::string> overrides_from_args(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    const size_t eq = arg.find('=');
    if (is_option(arg)) {
      if (eq != std::string::npos) {
        out.push_back(key_value(arg.substr(2, eq - 2), arg.substr(eq + 1)));
      } else if (i + 1 < args.size() && !is_option(args[i + 1])) {
        out.push_back(key_value(arg.substr(2), args[++i]));
      } else {
        fail(kSource, arg.substr(2), "missing value: write " + arg + " VALUE or " + arg + "=VALUE");
      }
    } else if (eq != std::string::npos && eq > 0) {
      out.push_back(key_value(arg.substr(0, eq), arg.substr(eq + 1)));
    } else {
      fail(kSource, "", "unexpected argument '" + arg + "': expected key=value, --key=value or --key value");
    }
  }
  return out;
}

}  // namespace qalign::config
