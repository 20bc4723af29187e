#include "qalign/base/error.h"

namespace qalign {

void fail(const std::string& source, const std::string& field, const std::string& what) {
  std::string msg = source;
  if (!field.empty()) msg += ": " + field;
  msg += ": " + what;
  throw Error(msg);
}

}  // namespace qalign
