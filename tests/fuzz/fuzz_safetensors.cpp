// safetensors: SafetensorsFile::open on the input (through its mmap), then every tensor read
// back in full, so that a header pointing outside the file shows up as an ASan read error.
#include "qalign/base/error.h"
#include "qalign/io/safetensors.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = qalign::fuzz::write_input(data, size, "model.safetensors");
  try {
    const auto file = qalign::io::SafetensorsFile::open(path);
    qalign::fuzz::read_every_byte(file->load_all());
  } catch (const qalign::Error&) {
  }
  return 0;
}
