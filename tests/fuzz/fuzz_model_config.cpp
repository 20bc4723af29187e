// HF config.json: ModelConfig::from_json_file on the input; an accepted config must write itself
// back (to_json) as a config that reads to the same JSON.
#include <cstdlib>

#include "qalign/base/error.h"
#include "qalign/model/config.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = qalign::fuzz::write_input(data, size, "config.json");
  qalign::model::ModelConfig config;
  try {
    config = qalign::model::ModelConfig::from_json_file(path);
  } catch (const qalign::Error&) {
    return 0;
  }
  const auto written = config.to_json();
  if (qalign::model::ModelConfig::from_json(written, "to_json").to_json() != written) std::abort();
  return 0;
}
