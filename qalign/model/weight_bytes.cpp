#include "qalign/model/weight_bytes.h"

#include "qalign/model/owl2.h"
#include "qalign/model/quantize.h"
#include "qalign/model/quantized_weight.h"

namespace qalign::model {

namespace {

bool int4_fits(const std::vector<std::pair<std::string, LinearImpl*>>& linears, int64_t group) {
  for (const auto& [name, lin] : linears)
    if (lin->weight.size(1) % group != 0 || lin->weight.size(0) % 16 != 0) return false;
  return true;
}

bool fp8_fits(const std::vector<std::pair<std::string, LinearImpl*>>& linears) {
  for (const auto& [name, lin] : linears)
    if (lin->weight.size(1) % 16 != 0 || lin->weight.size(0) % 16 != 0) return false;
  return true;
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
  const auto linears = quantized_linears(bf16, {"int8", 128});  // the same layers in every mode
  auto quantised = [&](const std::string& mode, int64_t group) {
    int64_t bytes = bf16_bytes;
    for (const auto& [name, lin] : linears)
      bytes += quantized_bytes(lin->weight.size(0), lin->weight.size(1), mode, group) -
               static_cast<int64_t>(lin->weight.nbytes());
    return bytes;
  };
  out.push_back({"int8", "--dtype bfloat16 --quantize int8", quantised("int8", 0)});
  out.push_back({"int8dyn", "--dtype bfloat16 --quantize int8dyn", quantised("int8dyn", 0)});
  for (const int64_t group : {128, 64, 32})
    if (int4_fits(linears, group)) {
      const auto g = std::to_string(group);
      out.push_back(
          {"int4 (group " + g + ")", "--dtype bfloat16 --quantize int4 --group-size " + g, quantised("int4", group)});
      break;
    }
  if (fp8_fits(linears)) out.push_back({"fp8", "--device cuda --dtype bfloat16 --quantize fp8", quantised("fp8", 0)});
  return out;
}

}  // namespace qalign::model
