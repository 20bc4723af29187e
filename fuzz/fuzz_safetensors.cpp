// safetensors: SafetensorsFile::open on the input (through its mmap), then every tensor read
// back in full, so that a header pointing outside the file shows up as an ASan read error.
#include "fuzz/fuzz_input.h"
#include "qalign/error.h"
#include "qalign/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = qalign::fuzz::write_input(data, size, "model.safetensors");
  try {
    const auto file = qalign::io::SafetensorsFile::open(path);
    uint8_t sum = 0;
    for (const auto& [name, tensor] : file->load_all()) {
      const auto bytes = tensor.contiguous();
      const auto* p = static_cast<const uint8_t*>(bytes.data_ptr());
      for (size_t i = 0, n = bytes.numel() * bytes.element_size(); i < n; ++i) sum ^= p[i];
    }
    volatile uint8_t sink = sum;
    (void)sink;
  } catch (const qalign::Error&) {
  }
  return 0;
}
