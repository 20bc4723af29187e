// The restricted unpickler alone, on the bare data.pkl bytes: inside a .bin the zip's CRC turns
// away nearly every mutated pickle before it is parsed. Every storage is a 64-byte record, and a
// numel that does not fill it is refused, as load_torch_bin refuses it.
#include "qalign/base/error.h"
#include "qalign/io/pickle.h"
#include "tests/fuzz/fuzz_input.h"

namespace {

constexpr int64_t kRecordBytes = 64;

torch::Tensor load_storage(const std::string& key, torch::Dtype dtype, int64_t numel) {
  const int64_t element = static_cast<int64_t>(c10::elementSize(dtype));
  if (numel != kRecordBytes / element) qalign::fail("fuzz", "data/" + key, "wrong storage size");
  return torch::arange(kRecordBytes, torch::kUInt8).view(dtype);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    qalign::fuzz::read_every_byte(qalign::io::unpickle_state_dict(data, size, "fuzz", load_storage));
  } catch (const qalign::Error&) {
  }
  return 0;
}
