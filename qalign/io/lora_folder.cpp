#include "qalign/io/lora_folder.h"

#include <cmath>
#include <filesystem>
#include <map>

#include "qalign/base/atomic_file.h"
#include "qalign/base/error.h"
#include "qalign/base/json_file.h"
#include "qalign/base/log.h"
#include "qalign/base/text.h"
#include "qalign/io/load_target.h"
#include "qalign/io/safetensors.h"
#include "qalign/io/torch_bin.h"
#include "qalign/io/weights.h"

namespace qalign::io {

namespace fs = std::filesystem;

namespace {

const std::string kPeftPrefix = "base_model.model.";

StateDict load_any(const std::string& path) {
  return fs::path(path).extension() == ".safetensors" ? SafetensorsFile::open(path)->load_all() : load_torch_bin(path);
}

model::LoraConfig parse_adapter_config(const nlohmann::json& j, const std::string& path) {
  auto field = [&](const char* key) -> const nlohmann::json& {
    if (!j.contains(key)) fail(path, key, "missing");
    return j.at(key);
  };
  if (j.value("peft_type", "LORA") != "LORA") fail(path, "peft_type", "only LORA adapters are supported");
  if (j.value("bias", "none") != "none") fail(path, "bias", "only bias \"none\" is supported (the authors' setting)");
  if (j.value("fan_in_fan_out", false))
    fail(path, "fan_in_fan_out", "true is for Conv1D layers, which this model has none of");
  // PEFT variants that change the update: applying their weights as plain LoRA gives wrong scores.
  for (const char* variant : {"use_dora", "use_rslora"})
    if (j.contains(variant) && j[variant].is_boolean() && j[variant].get<bool>())
      fail(path, variant, "true is not supported: only plain LoRA adapters (the authors') are");
  model::LoraConfig c;
  try {
    c.r = field("r").get<int64_t>();
    c.alpha = field("lora_alpha").get<double>();
    c.dropout = j.value("lora_dropout", 0.0);
    const auto& targets = field("target_modules");
    if (!targets.is_array())
      fail(path, "target_modules", "a regular expression is not supported; list the module names");
    c.target_modules = targets.get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception& e) {
    fail(path, "", std::string("unexpected value type: ") + e.what());
  }
  if (c.r < 1) fail(path, "r", "must be at least 1");
  return c;
}

// builder.py: strip `base_model.` from every key; then, when some key starts with
// `model.model.`, strip one `model.` from every key starting with `model.`.
StateDict builder_rename(const StateDict& saved) {
  StateDict once;
  bool nested = false;
  for (const auto& [k, v] : saved) {
    const std::string name = starts_with(k, "base_model.") ? k.substr(11) : k;
    nested = nested || starts_with(name, "model.model.");
    once[name] = v;
  }
  if (!nested) return once;
  StateDict twice;
  for (const auto& [k, v] : once) twice[starts_with(k, "model.") ? k.substr(6) : k] = v;
  return twice;
}

}  // namespace

LoraFolder read_lora_folder(const std::string& dir) {
  LoraFolder f;
  const auto config_path = (fs::path(dir) / "adapter_config.json").string();
  if (!fs::exists(config_path)) fail(dir, "adapter_config.json", "not a LoRA folder (no adapter_config.json)");
  const auto j = read_json_file(config_path);
  f.config = parse_adapter_config(j, config_path);
  f.base_model = j.value("base_model_name_or_path", "");

  // PEFT prefers the safetensors file when both are there.
  auto weights = (fs::path(dir) / "adapter_model.safetensors").string();
  if (!fs::exists(weights)) weights = (fs::path(dir) / "adapter_model.bin").string();
  if (!fs::exists(weights)) fail(dir, "adapter_model.safetensors", "missing (nor adapter_model.bin)");
  for (const auto& [key, t] : load_any(weights)) {
    if (!starts_with(key, kPeftPrefix) || !model::is_lora_parameter(key))
      fail(weights, key, "not a PEFT LoRA weight name (base_model.model.<module>.lora_A/B.weight)");
    f.adapters[key.substr(kPeftPrefix.size())] = t;
  }
  const auto extra = (fs::path(dir) / "non_lora_trainables.bin").string();
  if (fs::exists(extra)) f.non_lora_trainables = builder_rename(load_torch_bin(extra));
  return f;
}

void write_lora_folder(const std::string& dir, const model::LoraConfig& config,
                       const std::vector<std::string>& adapted_modules, const StateDict& adapters,
                       const StateDict& non_lora_trainables, const nlohmann::json& model_config,
                       const std::string& base_model) {
  fs::create_directories(dir);
  // PEFT's lora_alpha is an int; a whole alpha is written as one.
  const nlohmann::json alpha_json = config.alpha == std::floor(config.alpha)
                                        ? nlohmann::json(static_cast<int64_t>(config.alpha))
                                        : nlohmann::json(config.alpha);
  // PEFT 0.4.0's LoraConfig fields, sorted as its save_pretrained writes them.
  const nlohmann::json adapter_config = {{"auto_mapping", nullptr},
                                         {"base_model_name_or_path", base_model},
                                         {"bias", "none"},
                                         {"fan_in_fan_out", false},
                                         {"inference_mode", true},
                                         {"init_lora_weights", true},
                                         {"layers_pattern", nullptr},
                                         {"layers_to_transform", nullptr},
                                         {"lora_alpha", alpha_json},
                                         {"lora_dropout", config.dropout},
                                         {"modules_to_save", nullptr},
                                         {"peft_type", "LORA"},
                                         {"r", config.r},
                                         {"revision", nullptr},
                                         {"target_modules", adapted_modules},
                                         {"task_type", "CAUSAL_LM"}};
  StateDict peft, extra;
  for (const auto& [name, t] : adapters) peft[kPeftPrefix + name] = t.detach().to(torch::kCPU).contiguous();
  for (const auto& [name, t] : non_lora_trainables) extra[kPeftPrefix + name] = t.detach().to(torch::kCPU).contiguous();
  save_safetensors((fs::path(dir) / "adapter_model.safetensors").string(), peft);
  save_torch_bin((fs::path(dir) / "non_lora_trainables.bin").string(), extra);
  write_file_atomic((fs::path(dir) / "config.json").string(), model_config.dump(2) + "\n");
  write_file_atomic((fs::path(dir) / "adapter_config.json").string(), adapter_config.dump(2) + "\n");
}

StateDict lora_state_dict(torch::nn::Module& m) {
  StateDict sd;
  for (const auto& p : m.named_parameters())
    if (model::is_lora_parameter(p.key())) sd[p.key()] = p.value();
  return sd;
}

void load_lora_weights(model::Owl2ForCausalLM& m, const LoraFolder& f, const std::string& dir) {
  const auto params = io::state_dict(*m);
  const auto source = (fs::path(dir) / "adapter_model").string();
  torch::NoGradGuard no_grad;
  auto copy_in = [&](const StateDict& sd, const std::string& file) {
    for (const auto& [name, t] : sd) {
      const auto it = params.find(name);
      if (it == params.end()) fail(file, name, "names no parameter of the model (wrong base model or targets?)");
      if (it->second.sizes() != t.sizes()) fail(file, name, "shape does not match the model's");
      // A parameter without storage (model::NoStorageGuard) is only checked: ZeRO-3 reads its
      // chunks from the folder itself.
      if (it->second.numel() > 1 && it->second.storage().nbytes() < it->second.nbytes()) continue;
      it->second.copy_(t);
    }
  };
  for (const auto& [module, linear] : model::lora_modules(*m))
    for (const char* part : {".lora_A.weight", ".lora_B.weight"})
      if (!f.adapters.count(module + part)) fail(source, module + part, "missing: the model has an adapter there");
  copy_in(f.adapters, source);
  copy_in(f.non_lora_trainables, (fs::path(dir) / "non_lora_trainables.bin").string());
}

LoraFolder apply_lora_folder(model::Owl2ForCausalLM& m, const std::string& dir) {
  auto f = read_lora_folder(dir);
  const auto adapted = model::attach_lora(*m, f.config);
  load_lora_weights(m, f, dir);
  log::debug("applied ", dir, ": ", adapted.size(), " adapters (r ", f.config.r, ", alpha ", f.config.alpha, "), ",
             f.non_lora_trainables.size(), " other tensors");
  return f;
}

MergedWeights::MergedWeights(const std::string& model_dir, const std::string& lora_dir)
    : config_(checked_config(model_dir)), base_(model_dir) {
  model::Owl2ForCausalLM shapes(config_, torch::TensorOptions().device(torch::kMeta));
  std::map<std::string, std::vector<int64_t>> wanted;
  for (const auto& [name, t] : state_dict(*shapes)) wanted[name] = t.sizes().vec();
  if (!lora_dir.empty()) {  // checked on the meta model as apply_lora_folder checks a real one
    lora_ = read_lora_folder(lora_dir);
    model::attach_lora(*shapes, lora_.config);
    load_lora_weights(shapes, lora_, lora_dir);
  }
  for (const auto& name : base_.names())
    if (const auto it = wanted.find(name); it != wanted.end()) tensors_.emplace_back(name, it->second);
}

torch::Tensor MergedWeights::float32(const std::string& name) const {
  const auto trained = lora_.non_lora_trainables.find(name);
  auto t = trained != lora_.non_lora_trainables.end() ? trained->second.to(torch::kFloat32, false, /*copy=*/true)
                                                      : base_.read(name, torch::kFloat32);
  const std::string suffix = ".weight";
  if (!ends_with(name, suffix)) return t;
  const std::string module = name.substr(0, name.size() - suffix.size());
  const auto a = lora_.adapters.find(module + ".lora_A.weight"), b = lora_.adapters.find(module + ".lora_B.weight");
  if (a == lora_.adapters.end() || b == lora_.adapters.end()) return t;
  torch::NoGradGuard no_grad;
  t.add_(torch::matmul(b->second.to(torch::kFloat32), a->second.to(torch::kFloat32)) * lora_.config.scaling());
  return t;
}

model::Owl2ForCausalLM load_pretrained_with_lora(const std::string& model_dir, const std::string& lora_dir,
                                                 torch::Dtype dtype, torch::Device device,
                                                 const model::QuantizeOptions& quantize) {
  if (lora_dir.empty()) return io::load_pretrained(model_dir, dtype, device, quantize);
  const MergedWeights merged(model_dir, lora_dir);
  LoadTarget target(merged.config(), torch::TensorOptions().dtype(dtype).device(device), quantize);
  // Cast to the model's dtype first, as copying into a float model would, so that quantising
  // here gives the same weights as quantising after the load.
  for (const auto& [name, shape] : merged.tensors()) target.put(name, merged.float32(name).to(dtype).reshape({-1}), 0);
  auto m = target.finish(model_dir);
  log::info("applied and merged the LoRA folder ", lora_dir);
  return m;
}

}  // namespace qalign::io
