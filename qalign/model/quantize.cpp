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
  const int64_t out = lin.weight.size(0), in = lin.weight.size(1);
  const bool gpu = lin.weight.is_cuda();
  if (o.mode == "int8dyn" && gpu)
    fail("--quantize", "", "int8dyn (fbgemm) runs on the CPU only; " + name + " is on a GPU");
  if (o.mode == "fp8" && (in % 16 != 0 || out % 16 != 0))
    fail("--quantize", "",
         "fp8 needs input and output widths that are multiples of 16; " + name + " is " + std::to_string(in) + " to " +
             std::to_string(out));
  if (o.mode != "int4") return;
  if (in % o.group_size != 0)
    fail("--group-size", "",
         std::to_string(o.group_size) + " does not divide the input width " + std::to_string(in) + " of " + name +
             "; choose a group size (32, 64 or 128) that divides every layer's input");
  if (out % 16 != 0)
    fail("--quantize", "",
         "int4 needs output widths that are multiples of 16; " + name + " has " + std::to_string(out));
  if (gpu && in % 128 != 0)
    fail("--quantize", "",
         "int4 on a GPU needs input widths that are multiples of 128; " + name + " has " + std::to_string(in));
}

}  // namespace

void check_quantize_options(const QuantizeOptions& o, const std::string& device) {
  if (o.mode != "none" && o.mode != "int8" && o.mode != "int8dyn" && o.mode != "int4" && o.mode != "fp8")
    fail("--quantize", "", "expected none, int8, int8dyn, int4 or fp8, got " + o.mode);
  if (o.mode == "fp8" && device != "cuda")
    fail("--quantize", "", "fp8 needs a Hopper GPU: this run is on the " + device + "; use int8 or int4");
  if (o.mode == "int8dyn" && device != "cpu")
    fail("--quantize", "", "int8dyn (fbgemm) runs on the CPU only (--device " + device + "); use int8 or fp8");
  if (o.group_size != 32 && o.group_size != 64 && o.group_size != 128)
    fail("--group-size", "", "expected 32, 64 or 128, got " + std::to_string(o.group_size));
}

std::vector<std::pair<std::string, LinearImpl*>> quantized_linears(Owl2ForCausalLM& m, const QuantizeOptions& o) {
  if (o.mode == "none") return {};
  auto linears = language_linears(m);
  for (const auto& [name, lin] : linears) check_layer(name, *lin, o);
  return linears;
}

std::shared_ptr<QuantizedWeight> quantize_weight(const torch::Tensor& w, const QuantizeOptions& o) {
  if (o.mode == "int8dyn") return quantize_int8_dynamic(w);
  if (o.mode == "fp8") return quantize_fp8(w);
  return o.mode == "int8" ? quantize_int8(w) : quantize_int4(w, o.group_size);
}

void quantize_linears(Owl2ForCausalLM& m, const QuantizeOptions& o) {
  for (const auto& [name, lin] : quantized_linears(m, o)) lin->use_quantized(quantize_weight(lin->weight, o));
}

}  // namespace qalign::model
