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

}  // namespace qalign::io
