#include "qalign/base/json_file.h"

#include "qalign/base/atomic_file.h"
#include "qalign/base/error.h"

namespace qalign::io {

nlohmann::json parse_json(const std::string& text, const std::string& source) {
  using Event = nlohmann::json::parse_event_t;
  return nlohmann::json::parse(text, [&](int depth, Event event, const nlohmann::json&) {
    if ((event == Event::object_start || event == Event::array_start) && depth >= kMaxJsonDepth)
      fail(source, "", "nested more than " + std::to_string(kMaxJsonDepth) + " levels deep");
    return true;
  });
}

nlohmann::json read_json_file(const std::string& path) {
  try {
    return parse_json(read_file(path), path);
  } catch (const nlohmann::json::exception& e) {
    fail(path, "", std::string("not valid JSON: ") + e.what());
  }
}

}  // namespace qalign::io
