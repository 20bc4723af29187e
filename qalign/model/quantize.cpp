#include "qalign/model/quantize.h"

#include "qalign/base/error.h"
#include "qalign/model/quantized_weight.h"

namespace qalign::model {

namespace {

// The decoder layers' linears with their parameter-path names (model.layers.N....).
std::vector<std::pair<std::string, LinearImpl*>> language_linears(Owl2ForCausalLM& m) {
  std::vector<std::pair<std::string, LinearImpl*>> out;
  for (const auto& item : m->model->layers->named_modules("model.layers"))
    if (auto* lin = item.value()->as<LinearImpl>()) out.emplace_back(item.key(), lin);
  return out;
}

void check_layer(const std::string& name, const LinearImpl& lin, const QuantizeOptions& o) {
  if (lin.weight.device().type() != torch::kCPU)
    fail("--quantize", "", o.mode + " runs on the CPU only; " + name + " is on " + lin.weight.device().str());
  if (o.mode != "int4") return;
  const int64_t out = lin.weight.size(0), in = lin.weight.size(1);
  if (in % o.group_size != 0)
    fail("--group-size", "",
         std::to_string(o.group_size) + " does not divide the input width " + std::to_string(in) + " of " + name +
             "; choose a group size (32, 64 or 128) that divides every layer's input");
  if (out % 16 != 0)
    fail("--quantize", "",
         "int4 needs output widths that are multiples of 16; " + name + " has " + std::to_string(out));
}

}  // namespace

void check_quantize_options(const QuantizeOptions& o, const std::string& device) {
  if (o.mode == "fp8")
    fail("--quantize", "",
         device == "cuda" ? "fp8 (per-row scales through _scaled_mm on a Hopper GPU) is not implemented yet; use int8 "
                            "or int4 on the CPU"
                          : "fp8 needs a Hopper GPU: this run is on the CPU; use int8 or int4");
  if (o.mode != "none" && o.mode != "int8" && o.mode != "int4")
    fail("--quantize", "", "expected none, int8 or int4, got " + o.mode);
  if (o.mode != "none" && device != "cpu")
    fail("--quantize", "", o.mode + " runs on the CPU only in this build (--device " + device + ")");
  if (o.group_size != 32 && o.group_size != 64 && o.group_size != 128)
    fail("--group-size", "", "expected 32, 64 or 128, got " + std::to_string(o.group_size));
}

void quantize_linears(Owl2ForCausalLM& m, const QuantizeOptions& o) {
  if (o.mode == "none") return;
  const auto linears = language_linears(m);
  for (const auto& [name, lin] : linears) check_layer(name, *lin, o);
  for (const auto& [name, lin] : linears) {
    lin->use_quantized(o.mode == "int8" ? quantize_int8(lin->weight) : quantize_int4(lin->weight, o.group_size));
  }
}

}  // namespace qalign::model
