#include "qalign/model/quantize.h"

#include <optional>

#include "qalign/base/error.h"
#include "qalign/model/quantized_weight.h"

namespace qalign::model {

namespace {

// The linears under `part`, with their parameter-path names (`prefix`....).
void add_linears(torch::nn::Module& part, const std::string& prefix,
                 std::vector<std::pair<std::string, LinearImpl*>>& out) {
  for (const auto& item : part.named_modules(prefix))
    if (auto* lin = item.value()->as<LinearImpl>()) out.emplace_back(item.key(), lin);
}

struct WidthProblem {
  std::string option, message;
};

// Why `o` cannot quantise `lin` (called `name`) at its widths and device; nothing where it can.
std::optional<WidthProblem> width_problem(const std::string& name, const LinearImpl& lin, const QuantizeOptions& o) {
  const int64_t out = lin.weight.size(0), in = lin.weight.size(1);
  const bool gpu = lin.weight.is_cuda();
  if (o.mode == "int8dyn" && gpu)
    return WidthProblem{"--quantize", "int8dyn (fbgemm) runs on the CPU only; " + name + " is on a GPU"};
  if (o.mode == "fp8" && (in % 16 != 0 || out % 16 != 0))
    return WidthProblem{"--quantize", "fp8 needs input and output widths that are multiples of 16; " + name + " is " +
                                          std::to_string(in) + " to " + std::to_string(out)};
  // LibTorch's int8 weight-only kernel reads the input in blocks of 16 (a width of 88 crashes it).
  if (o.mode == "int8" && in % 16 != 0)
    return WidthProblem{"--quantize",
                        "int8 needs input widths that are multiples of 16; " + name + " has " + std::to_string(in) +
                            (o.vision ? " (leave out --quantize-vision, or use int8dyn)" : " (use int8dyn)")};
  if (o.mode != "int4") return std::nullopt;
  if (in % o.group_size != 0)
    return WidthProblem{"--group-size", std::to_string(o.group_size) + " does not divide the input width " +
                                            std::to_string(in) + " of " + name +
                                            "; choose a group size (32, 64 or 128) that divides every layer's input"};
  if (out % 16 != 0)
    return WidthProblem{"--quantize",
                        "int4 needs output widths that are multiples of 16; " + name + " has " + std::to_string(out)};
  if (gpu && in % 128 != 0)
    return WidthProblem{"--quantize", "int4 on a GPU needs input widths that are multiples of 128; " + name + " has " +
                                          std::to_string(in)};
  return std::nullopt;
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

std::vector<std::pair<std::string, LinearImpl*>> quantizable_linears(Owl2ForCausalLM& m, bool vision) {
  std::vector<std::pair<std::string, LinearImpl*>> linears;
  add_linears(*m->model->layers, "model.layers", linears);
  if (vision) {
    add_linears(*m->model->vision_model, "model.vision_model", linears);
    add_linears(*m->model->visual_abstractor, "model.visual_abstractor", linears);
  }
  return linears;
}

std::vector<std::pair<std::string, LinearImpl*>> quantized_linears(Owl2ForCausalLM& m, const QuantizeOptions& o) {
  if (o.mode == "none") return {};
  auto linears = quantizable_linears(m, o.vision);
  for (const auto& [name, lin] : linears)
    if (const auto problem = width_problem(name, *lin, o)) fail(problem->option, "", problem->message);
  return linears;
}

std::vector<std::string> row_read_tensors() { return {"model.embed_tokens.weight", "lm_head.weight"}; }

bool can_quantize(const LinearImpl& lin, const QuantizeOptions& o) { return !width_problem("", lin, o); }

std::string describe(const QuantizeOptions& o) {
  auto text = o.mode == "int4" ? o.mode + " (group " + std::to_string(o.group_size) + ")" : o.mode;
  return o.vision && o.mode != "none" ? text + " + vision" : text;
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
