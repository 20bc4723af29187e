// The authors' label files: the input read both as training records and as scored records.
#include "qalign/base/error.h"
#include "qalign/label_files.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = qalign::fuzz::write_input(data, size, "data.json");
  try {
    qalign::read_training_records(path, "images");
  } catch (const qalign::Error&) {
  }
  try {
    qalign::read_scored_records(path, "images");
  } catch (const qalign::Error&) {
  }
  return 0;
}
