#include "qalign/scoring/run_options.h"

#include "qalign/base/compat.h"
#include "qalign/base/error.h"

namespace qalign::scoring {

void check_run_options(const std::string& dtype, const std::string& device, int batch_size) {
  if (dtype != "float32" && dtype != "bfloat16") fail("--dtype", "", "expected float32 or bfloat16, got " + dtype);
  if (device != "cpu" && device != "cuda") fail("--device", "", "expected cpu or cuda, got " + device);
  if (device == "cuda" && !compat::cuda_available())
    fail("--device", "", "cuda requested but no CUDA device is visible");
  if (batch_size < 1) fail("--batch-size", "", "must be at least 1");
}

}  // namespace qalign::scoring
