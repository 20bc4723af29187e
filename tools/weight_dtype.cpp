#include "tools/weight_dtype.h"

#include "qalign/base/error.h"

namespace qalign::tools {

torch::Dtype parse_weight_dtype(const std::string& name) {
  if (name == "bfloat16") return torch::kBFloat16;
  if (name == "float16") return torch::kFloat16;
  if (name == "float32") return torch::kFloat32;
  fail("--dtype", name, "expected bfloat16, float16 or float32");
}

}  // namespace qalign::tools
