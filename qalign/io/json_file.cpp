#include "qalign/io/json_file.h"

#include "qalign/error.h"
#include "qalign/io/atomic_file.h"

namespace qalign::io {

nlohmann::json read_json_file(const std::string& path) {
  try {
    return nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail(path, "", std::string("not valid JSON: ") + e.what());
  }
}

}  // namespace qalign::io
