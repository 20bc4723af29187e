// YAML training recipes: load_train_config on the input; an accepted recipe must survive
// to_yaml and back unchanged.
#include <cstdlib>

#include "qalign/base/error.h"
#include "qalign/config/train_config.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = qalign::fuzz::write_input(data, size, "recipe.yaml");
  qalign::config::TrainConfig config;
  try {
    config = qalign::config::load_train_config(path);
  } catch (const qalign::Error&) {
    return 0;
  }
  const std::string yaml = qalign::config::to_yaml(config);
  const std::string again =
      qalign::fuzz::write_input(reinterpret_cast<const uint8_t*>(yaml.data()), yaml.size(), "again.yaml");
  if (qalign::config::to_yaml(qalign::config::load_train_config(again)) != yaml) std::abort();
  return 0;
}
