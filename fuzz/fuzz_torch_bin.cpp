// PyTorch .bin: load_torch_bin on the input (zip, data.pkl through the restricted unpickler, the
// storage records), then every tensor read back in full through its strided view.
#include "fuzz/fuzz_input.h"
#include "qalign/error.h"
#include "qalign/io/torch_bin.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = qalign::fuzz::write_input(data, size, "pytorch_model.bin");
  try {
    uint8_t sum = 0;
    for (const auto& [name, tensor] : qalign::io::load_torch_bin(path)) {
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
