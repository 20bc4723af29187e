#include "qalign/io/load_target.h"

#include <set>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "qalign/base/error.h"
#include "qalign/io/weights.h"
#include "qalign/model/quantized_weight.h"

namespace qalign::io {

LoadTarget::LoadTarget(const model::ModelConfig& config, const torch::TensorOptions& opts,
                       const model::QuantizeOptions& q)
    : opts_(opts), quantize_(q) {
#ifdef __GLIBC__
  // glibc's adaptive mmap threshold climbs to 32 MiB after the first large free; from then on the
  // 16-32 MiB blocks of a load (read pieces, quantising's temporaries) come from the heap and stay
  // resident between the long-lived weights (0.23 GB of a full-size int4 load's 5.5 GB peak).
  // While loading they are mapped and unmapped instead; finish() sets the threshold the
  // adaptive one settles at, so later work reuses heap blocks as before.
  if (q.mode != "none") mallopt(M_MMAP_THRESHOLD, 16 << 20);
#endif
  {
    model::SkipInitGuard uninitialised;
    std::optional<model::MetaLinearWeightsGuard> no_storage;
    if (q.mode != "none") no_storage.emplace();
    model_ = model::Owl2ForCausalLM(config, opts);
  }
  std::set<model::LinearImpl*> quantised;
  for (const auto& [path, linear] : model::quantized_linears(model_, q)) {
    pending_[path + ".weight"] = {linear};
    quantised.insert(linear);
  }
  // The linears kept in floats get the storage the guard left out.
  for (const auto& item : model_->named_modules())
    if (auto* linear = item.value()->as<model::LinearImpl>(); linear && !quantised.count(linear))
      if (linear->weight.is_meta()) linear->set_weight(torch::empty(linear->weight.sizes(), opts));
  for (const auto& [name, t] : state_dict(*model_))
    if (!pending_.count(name)) floats_[name] = t;
}

std::vector<std::string> LoadTarget::mappable() const {
  if (quantize_.mode == "none" || !opts_.device().is_cpu()) return {};
  return model::row_read_tensors();
}

void LoadTarget::use_mapped(const std::string& name, const torch::Tensor& view) {
  const auto it = floats_.find(name);
  if (it == floats_.end() || view.scalar_type() != it->second.scalar_type() || view.sizes() != it->second.sizes() ||
      !view.device().is_cpu())
    return;
  it->second.set_data(view);  // the module's parameter is this tensor: it now reads the file's pages
  floats_.erase(it);
}

void LoadTarget::put(const std::string& name, const torch::Tensor& part, int64_t offset) {
  torch::NoGradGuard no_grad;
  if (const auto it = floats_.find(name); it != floats_.end()) {
    it->second.view({-1}).narrow(0, offset, part.numel()).copy_(part);
    return;
  }
  const auto it = pending_.find(name);
  if (it == pending_.end()) return;
  auto& p = it->second;
  if (!p.floats.defined()) p.floats = torch::empty(p.linear->weight.sizes(), opts_);
  p.floats.view({-1}).narrow(0, offset, part.numel()).copy_(part);
  p.filled += part.numel();
  if (p.filled < p.floats.numel()) return;
  p.linear->use_quantized(model::quantize_weight(p.floats, quantize_));
  pending_.erase(it);
#ifdef __GLIBC__
  // Quantising's smaller temporaries are heap blocks freed between long-lived codes; glibc keeps
  // such holes resident (0.7 GB of them at full size in int8) unless asked to give them back.
  malloc_trim(0);
#endif
}

model::Owl2ForCausalLM LoadTarget::finish(const std::string& source) {
  if (!pending_.empty()) fail(source, pending_.begin()->first, "not read in full: cannot quantise it");
#ifdef __GLIBC__
  if (quantize_.mode != "none") mallopt(M_MMAP_THRESHOLD, 32 << 20);
#endif
  model_->eval();
  return model_;
}

}  // namespace qalign::io
