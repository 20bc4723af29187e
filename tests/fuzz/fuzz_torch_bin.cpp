// PyTorch .bin: load_torch_bin on the input (zip, data.pkl through the restricted unpickler, the
// storage records), then every tensor read back in full through its strided view.
#include "qalign/base/error.h"
#include "qalign/io/torch_bin.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = qalign::fuzz::write_input(data, size, "pytorch_model.bin");
  try {
    qalign::fuzz::read_every_byte(qalign::io::load_torch_bin(path));
  } catch (const qalign::Error&) {
  }
  return 0;
}
