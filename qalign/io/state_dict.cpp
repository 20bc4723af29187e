#include "qalign/io/state_dict.h"

#include "qalign/base/error.h"

namespace qalign::io {

namespace {
const std::pair<const char*, torch::Dtype> kDtypes[] = {
    {"F64", torch::kFloat64},
    {"F32", torch::kFloat32},
    {"F16", torch::kFloat16},
    {"BF16", torch::kBFloat16},
    {"I64", torch::kInt64},
    {"I32", torch::kInt32},
    {"I16", torch::kInt16},
    {"I8", torch::kInt8},
    {"U8", torch::kUInt8},
    {"BOOL", torch::kBool},
    {"F8_E4M3", torch::kFloat8_e4m3fn},
    {"F8_E5M2", torch::kFloat8_e5m2},
};
}  // namespace

torch::Dtype dtype_from_safetensors(const std::string& name, const std::string& source, const std::string& field) {
  for (const auto& [n, d] : kDtypes)
    if (name == n) return d;
  fail(source, field, "unknown dtype \"" + name + "\" (expected F64, F32, F16, BF16, I64, I32, I16, I8, U8 or BOOL)");
}

std::string dtype_to_safetensors(torch::Dtype dtype) {
  for (const auto& [n, d] : kDtypes)
    if (dtype == d) return n;
  throw Error(std::string("no safetensors name for dtype ") + c10::toString(dtype));
}

}  // namespace qalign::io
