#include "tools/mode_weights.h"

#include <algorithm>
#include <cstdio>

#include "qalign/base/bounded_file.h"
#include "qalign/model/weight_bytes.h"

namespace qalign::tools {

std::string mode_weights_text(const model::ModelConfig& c) {
  std::string out = "weights in memory when scoring, per mode (qalign score ...):\n";
  int64_t mapped = 0;
  for (const auto& m : model::weight_bytes_per_mode(c)) {
    char line[256];
    std::snprintf(line, sizeof line, "  %-26s %9s  %5.2f GB  %s\n", m.mode.c_str(),
                  io::byte_count_text(static_cast<uint64_t>(m.bytes)).c_str(), static_cast<double>(m.bytes) / 1e9,
                  m.flags.c_str());
    out += line;
    mapped = std::max(mapped, m.mapped);
  }
  if (mapped > 0) {
    char line[256];
    std::snprintf(line, sizeof line,
                  "  (on the CPU the quantised modes read embed_tokens and lm_head, %.2f GB of the above, from the\n"
                  "  memory-mapped checkpoint: only the rows scoring reads become resident)\n",
                  static_cast<double>(mapped) / 1e9);
    out += line;
  }
  return out;
}

nlohmann::json mode_weights_json(const model::ModelConfig& c) {
  auto out = nlohmann::json::array();
  for (const auto& m : model::weight_bytes_per_mode(c))
    out.push_back({{"mode", m.mode}, {"flags", m.flags}, {"bytes", m.bytes}, {"mapped_bytes", m.mapped}});
  return out;
}

}  // namespace qalign::tools
