// Image decoding: decode_image on the input (the JPEG/PNG header check, then OpenCV).
#include "data/image_decode.h"
#include "qalign/base/error.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = qalign::fuzz::write_input(data, size, "image");
  try {
    qalign::data::decode_image(path);
  } catch (const qalign::Error&) {
  }
  return 0;
}
