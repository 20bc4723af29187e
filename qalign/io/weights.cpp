#include "qalign/io/weights.h"

#include <filesystem>
#include <map>

#include "qalign/base/error.h"
#include "qalign/base/log.h"
#include "qalign/base/text.h"
#include "qalign/io/checkpoint.h"
#include "qalign/io/config_vs_weights.h"
#include "qalign/io/load_target.h"
#include "qalign/io/safetensors.h"
#include "qalign/io/weight_reader.h"

namespace qalign::io {

namespace {

bool recomputed_buffer(const std::string& name) {
  const std::string suffix = "rotary_emb.inv_freq";
  return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string shape_text(c10::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

std::string first_names(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < 5; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > 5) out += ", ... (" + std::to_string(names.size()) + " in all)";
  return out;
}

}  // namespace

io::StateDict state_dict(const torch::nn::Module& m) {
  io::StateDict sd;
  for (const auto& p : m.named_parameters()) sd[p.key()] = p.value();
  for (const auto& b : m.named_buffers()) sd[b.key()] = b.value();
  return sd;
}

namespace {

// Every model tensor present in `have` with its shape, and nothing else (recomputed buffers aside).
void check_coverage(const io::StateDict& target, const TensorShapes& have, const std::string& source) {
  std::vector<std::string> missing, unexpected;
  for (const auto& [name, t] : target)
    if (!have.count(name)) missing.push_back(name);
  for (const auto& [name, shape] : have)
    if (!target.count(name) && !recomputed_buffer(name)) unexpected.push_back(name);
  if (!missing.empty()) fail(source, missing.front(), "missing from the checkpoint: " + first_names(missing));
  if (!unexpected.empty())
    fail(source, unexpected.front(), "not a parameter of this model (wrong config.json?): " + first_names(unexpected));
  for (const auto& [name, dst] : target) {
    const auto& shape = have.at(name);
    if (c10::IntArrayRef(shape) != dst.sizes())
      fail(source, name, "shape " + shape_text(shape) + " but the model expects " + shape_text(dst.sizes()));
  }
}

}  // namespace

void load_state_dict(torch::nn::Module& m, const io::StateDict& sd, const std::string& source) {
  auto target = state_dict(m);
  TensorShapes have;
  for (const auto& [name, t] : sd) have[name] = t.sizes().vec();
  check_coverage(target, have, source);
  torch::NoGradGuard no_grad;
  for (auto& [name, dst] : target) dst.copy_(sd.at(name));
}

model::ModelConfig checked_config(const std::string& dir) {
  const auto config_path = (std::filesystem::path(dir) / "config.json").string();
  const auto config = model::ModelConfig::from_json_file(config_path);
  const auto weights = io::resolve_weights(dir);
  TensorShapes have;
  for (const auto& t : io::list_weights(weights)) have[t.name] = t.shape;
  // Nothing of the config's sizes is allocated until the weights agree with them: first the
  // sizes themselves, then every tensor of a model built on the meta device (no memory).
  check_config_against_weights(config, have, config_path, std::filesystem::path(weights).filename().string());
  check_coverage(state_dict(*model::Owl2ForCausalLM(config, torch::TensorOptions().device(torch::kMeta))), have,
                 weights);
  return config;
}

model::Owl2ForCausalLM load_pretrained(const std::string& dir, torch::Dtype dtype, torch::Device device,
                                       const model::QuantizeOptions& quantize) {
  const auto config = checked_config(dir);
  const auto weights = io::resolve_weights(dir);
  LoadTarget target(config, torch::TensorOptions().dtype(dtype).device(device), quantize);
  if (const auto names = target.mappable(); !names.empty())
    for (const auto& file : weight_files(weights))
      if (ends_with(file, ".safetensors")) {
        const auto st = SafetensorsFile::open(file);
        for (const auto& name : names)
          if (st->contains(name)) target.use_mapped(name, st->get(name));
      }
  // Tensor by tensor, straight into the model's dtype and device: no second copy of the model.
  io::for_each_weight(weights, [&](const std::string& name, const torch::Tensor& part, int64_t offset) {
    target.put(name, part, offset);
  });
  auto model = target.finish(weights);
  log::debug("loaded ", weights, ": ", count_parameters(*model), " parameters");
  return model;
}

model::Owl2ForCausalLM load_without_storage(const std::string& dir, torch::Dtype dtype, torch::Device device) {
  const auto config = checked_config(dir);
  model::Owl2ForCausalLM model = [&] {
    model::NoStorageGuard no_storage;
    return model::Owl2ForCausalLM(config, torch::TensorOptions().dtype(dtype).device(device));
  }();
  const WeightReader weights(dir);
  torch::NoGradGuard no_grad;
  for (const auto& b : model->named_buffers()) b.value().copy_(weights.read(b.key(), b.value().scalar_type()));
  model->eval();
  return model;
}

}  // namespace qalign::io
