#include "qalign/io/weight_reader.h"

#include "qalign/base/error.h"
#include "qalign/base/text.h"
#include "qalign/io/checkpoint.h"
#include "qalign/io/torch_bin.h"

namespace qalign::io {

WeightReader::WeightReader(const std::string& path) : source_(resolve_weights(path)) {
  for (const auto& file : weight_files(source_)) {
    if (ends_with(file, ".safetensors")) {
      const auto st = SafetensorsFile::open(file);
      for (const auto& t : st->tensors()) {
        if (!mapped_.emplace(t.name, st).second) fail(file, t.name, "tensor also appears in another shard");
        names_.push_back(t.name);
      }
    } else {
      for (auto& [name, t] : load_torch_bin(file)) {
        if (!loaded_.emplace(name, t).second) fail(file, name, "tensor also appears in another shard");
        names_.push_back(name);
      }
    }
  }
}

bool WeightReader::contains(const std::string& name) const { return mapped_.count(name) || loaded_.count(name); }

torch::Tensor WeightReader::read(const std::string& name, torch::Dtype dtype) const {
  if (const auto it = loaded_.find(name); it != loaded_.end()) return it->second.to(dtype, false, /*copy=*/true);
  const auto it = mapped_.find(name);
  if (it == mapped_.end()) fail(source_, name, "not in the checkpoint");
  const auto view = it->second->get(name);
  auto out = view.to(dtype, false, /*copy=*/true);
  it->second->release(name, 0, static_cast<uint64_t>(view.numel() * view.element_size()));
  return out;
}

void WeightReader::read_into(const std::string& name, int64_t offset, torch::Tensor out) const {
  const int64_t n = out.numel();
  const auto check = [&](int64_t numel) {
    if (offset < 0 || offset + n > numel)
      fail(source_, name,
           "holds " + std::to_string(numel) + " values; elements " + std::to_string(offset) + " to " +
               std::to_string(offset + n) + " were asked for (the checkpoint does not match the model)");
  };
  torch::NoGradGuard no_grad;
  if (const auto it = loaded_.find(name); it != loaded_.end()) {
    check(it->second.numel());
    out.view({-1}).copy_(it->second.reshape({-1}).narrow(0, offset, n));
    return;
  }
  const auto it = mapped_.find(name);
  if (it == mapped_.end()) fail(source_, name, "not in the checkpoint");
  const auto flat = it->second->get(name).reshape({-1});
  check(flat.numel());
  out.view({-1}).copy_(flat.narrow(0, offset, n));
  const auto size = static_cast<uint64_t>(flat.element_size());
  it->second->release(name, static_cast<uint64_t>(offset) * size, static_cast<uint64_t>(offset + n) * size);
}

}  // namespace qalign::io
