#pragma once
// One CSV field, quoted as RFC 4180 says (by hand: a dozen lines, where a CSV library would be a
// new dependency). Every CSV qalign writes (score rows, eval predictions) goes through it.
#include <string>

namespace qalign::io {

// `s` as is, or in double quotes with inner quotes doubled when it holds , " \r or \n.
std::string csv_field(const std::string& s);

}  // namespace qalign::io
