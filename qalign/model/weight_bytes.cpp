#include "qalign/model/weight_bytes.h"

#include <algorithm>

#include "qalign/model/owl2.h"
#include "qalign/model/quantize.h"
#include "qalign/model/quantized_weight.h"

namespace qalign::model {

namespace {

// Whether every one of `linears` takes `o` (quantize.h's rules, on the CPU: these are on meta).
bool all_take(const std::vector<std::pair<std::string, LinearImpl*>>& linears, const QuantizeOptions& o) {
  return std::all_of(linears.begin(), linears.end(), [&](const auto& l) { return can_quantize(*l.second, o); });
}

int64_t bytes_of(const Owl2ForCausalLM& m) {
  int64_t bytes = 0;
  for (const auto& p : m->parameters()) bytes += static_cast<int64_t>(p.nbytes());
  for (const auto& b : m->buffers()) bytes += static_cast<int64_t>(b.nbytes());
  return bytes;
}

Owl2ForCausalLM on_meta(const ModelConfig& c, torch::Dtype dtype) {
  return Owl2ForCausalLM(c, torch::TensorOptions().dtype(dtype).device(torch::kMeta));
}

}  // namespace

std::vector<ModeWeights> weight_bytes_per_mode(const ModelConfig& c) {
  auto bf16 = on_meta(c, torch::kBFloat16);
  const int64_t bf16_bytes = bytes_of(bf16);
  std::vector<ModeWeights> out = {{"float32", "--dtype float32", bytes_of(on_meta(c, torch::kFloat32))},
                                  {"bfloat16", "--dtype bfloat16", bf16_bytes}};
  // The same layers in every mode; with --quantize-vision the vision tower's and abstractor's too.
  const auto language = quantizable_linears(bf16, false);
  const auto all = quantizable_linears(bf16, true);
  auto quantised = [&](const std::vector<std::pair<std::string, LinearImpl*>>& linears, const std::string& mode,
                       int64_t group) {
    int64_t bytes = bf16_bytes;
    for (const auto& [name, lin] : linears)
      bytes += quantized_bytes(lin->weight.size(0), lin->weight.size(1), mode, group) -
               static_cast<int64_t>(lin->weight.nbytes());
    return bytes;
  };
  int64_t mapped = 0;
  const auto params = bf16->named_parameters();
  for (const auto& name : row_read_tensors()) mapped += static_cast<int64_t>(params[name].nbytes());
  const std::string vision = " --quantize-vision";
  if (all_take(language, {"int8"}))
    out.push_back({"int8", "--dtype bfloat16 --quantize int8", quantised(language, "int8", 0), mapped});
  if (all_take(all, {"int8"}))
    out.push_back({"int8 + vision", "--dtype bfloat16 --quantize int8" + vision, quantised(all, "int8", 0), mapped});
  out.push_back({"int8dyn", "--dtype bfloat16 --quantize int8dyn", quantised(language, "int8dyn", 0), mapped});
  for (const int64_t group : {128, 64, 32})
    if (all_take(language, {"int4", group})) {
      const auto g = std::to_string(group);
      const auto flags = "--dtype bfloat16 --quantize int4 --group-size " + g;
      out.push_back({"int4 (group " + g + ")", flags, quantised(language, "int4", group), mapped});
      if (all_take(all, {"int4", group}))
        out.push_back({"int4 (group " + g + ") + vision", flags + vision, quantised(all, "int4", group), mapped});
      break;
    }
  if (all_take(language, {"fp8"}))
    out.push_back({"fp8", "--device cuda --dtype bfloat16 --quantize fp8", quantised(language, "fp8", 0)});
  return out;
}

}  // namespace qalign::model
