#include "qalign/io/checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "qalign/base/atomic_file.h"
#include "qalign/base/error.h"
#include "qalign/base/json_file.h"
#include "qalign/base/text.h"
#include "qalign/io/safetensors.h"
#include "qalign/io/torch_bin.h"

namespace qalign::io {

namespace fs = std::filesystem;

namespace {

// shard file -> tensor names it must hold, from an index's weight_map.
std::map<std::string, std::vector<std::string>> read_index(const std::string& index_path) {
  const nlohmann::json j = read_json_file(index_path);
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    fail(index_path, "weight_map", "missing (expected an object mapping tensor names to shard files)");
  std::map<std::string, std::vector<std::string>> shards;
  for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
    if (!it.value().is_string()) fail(index_path, "weight_map." + it.key(), "shard file name must be a string");
    const std::string file = it.value().get<std::string>();
    if (file.find('/') != std::string::npos || file == ".." || file.empty())
      fail(index_path, "weight_map." + it.key(), "shard \"" + file + "\" must be a file name in the same folder");
    shards[file].push_back(it.key());
  }
  return shards;
}

StateDict load_file(const std::string& path);

}  // namespace

std::vector<std::string> weight_files(const std::string& file) {
  if (!ends_with(file, ".json")) return {file};
  std::vector<std::string> files;
  for (const auto& [shard, names] : read_index(file)) {
    const fs::path shard_path = fs::path(file).parent_path() / shard;
    if (!fs::exists(shard_path)) fail(file, names.front(), "its shard " + shard_path.string() + " is missing");
    files.push_back(shard_path.string());
  }
  return files;
}

namespace {

StateDict load_file(const std::string& path) {
  if (ends_with(path, ".safetensors")) return SafetensorsFile::open(path)->load_all();
  return load_torch_bin(path);
}

}  // namespace

std::string resolve_weights(const std::string& path) {
  if (!fs::exists(path)) fail(path, "", "no such file or folder");
  if (!fs::is_directory(path)) return path;
  for (const char* name :
       {"model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"}) {
    const fs::path p = fs::path(path) / name;
    if (fs::exists(p)) return p.string();
  }
  fail(path, "",
       "no weights found (looked for model.safetensors, model.safetensors.index.json, "
       "pytorch_model.bin, pytorch_model.bin.index.json)");
}

StateDict load_weights(const std::string& path) {
  const std::string file = resolve_weights(path);
  if (!ends_with(file, ".json")) return load_file(file);
  StateDict out;
  const fs::path dir = fs::path(file).parent_path();
  for (const auto& [shard, names] : read_index(file)) {
    const fs::path shard_path = dir / shard;
    if (!fs::exists(shard_path)) fail(file, names.front(), "its shard " + shard_path.string() + " is missing");
    StateDict part = load_file(shard_path.string());
    for (const auto& n : names)
      if (!part.count(n)) fail(shard_path.string(), n, "listed in " + file + " but not in this shard");
    for (auto& [n, t] : part)
      if (!out.emplace(n, t).second) fail(shard_path.string(), n, "tensor also appears in another shard");
  }
  return out;
}

void for_each_weight(const std::string& path,
                     const std::function<void(const std::string&, const torch::Tensor&, int64_t)>& f) {
  const std::vector<std::string> files = weight_files(resolve_weights(path));
  constexpr int64_t kPieceBytes = 16 << 20;
  for (const auto& one : files) {
    if (!ends_with(one, ".safetensors")) {
      for (const auto& [name, t] : load_torch_bin(one)) f(name, t.reshape({-1}), 0);
      continue;
    }
    const auto st = SafetensorsFile::open(one);
    for (const auto& info : st->tensors()) {
      const auto flat = st->get(info.name).reshape({-1});
      const int64_t size = std::max<int64_t>(flat.element_size(), 1);
      const int64_t step = std::max<int64_t>(kPieceBytes / size, 1);
      for (int64_t at = 0; at < flat.numel(); at += step) {
        const int64_t n = std::min(step, flat.numel() - at);
        f(info.name, flat.narrow(0, at, n), at);
        st->release(info.name, static_cast<uint64_t>(at * size), static_cast<uint64_t>((at + n) * size));
      }
      if (flat.numel() == 0) f(info.name, flat, 0);
    }
  }
}

std::vector<TensorSummary> list_weights(const std::string& path) {
  std::map<std::string, TensorSummary> by_name;
  for (const auto& f : weight_files(resolve_weights(path))) {
    if (ends_with(f, ".safetensors")) {
      const auto st = SafetensorsFile::open(f);  // held: tensors() refers into it
      for (const auto& t : st->tensors()) by_name[t.name] = {t.name, t.dtype, t.shape};
      continue;
    }
    for (const auto& [name, t] : list_torch_bin(f))
      by_name[name] = {name, dtype_to_safetensors(t.scalar_type()), t.sizes().vec()};
  }
  std::vector<TensorSummary> out;
  for (auto& [n, s] : by_name) out.push_back(std::move(s));
  return out;
}

void save_weights(const std::string& dir, const StateDict& tensors, WeightFormat format, uint64_t max_shard_bytes) {
  std::vector<TensorSpec> specs;
  for (const auto& [name, t] : tensors) specs.push_back({name, t.sizes().vec(), t.scalar_type()});
  save_weights(
      dir, specs, [&](const TensorSpec& s) { return tensors.at(s.name); }, format, max_shard_bytes);
}

namespace {

// Indices into `specs`, shard by shard: filled in order, a new shard when the next tensor would
// pass max_shard_bytes.
std::vector<std::vector<size_t>> cut_shards(const std::vector<TensorSpec>& specs, uint64_t max_shard_bytes) {
  std::vector<std::vector<size_t>> shards(1);
  uint64_t current = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    const uint64_t n = static_cast<uint64_t>(c10::multiply_integers(specs[i].shape)) * c10::elementSize(specs[i].dtype);
    if (current > 0 && current + n > max_shard_bytes) {
      shards.emplace_back();
      current = 0;
    }
    shards.back().push_back(i);
    current += n;
  }
  return shards;
}

std::vector<TensorSpec> members(const std::vector<TensorSpec>& specs, const std::vector<size_t>& shard) {
  std::vector<TensorSpec> out;
  for (const size_t i : shard) out.push_back(specs[i]);
  return out;
}

// Writes the shards (write(path, shard) each) and, for more than one, the index naming them.
void write_layout(const std::string& dir, const std::vector<TensorSpec>& specs, bool st,
                  const std::vector<std::vector<size_t>>& shards,
                  const std::function<void(const std::string&, const std::vector<size_t>&)>& write) {
  fs::create_directories(dir);
  if (shards.size() == 1) {
    write((fs::path(dir) / (st ? "model.safetensors" : "pytorch_model.bin")).string(), shards[0]);
    return;
  }
  uint64_t total = 0;
  for (const auto& s : specs)
    total += static_cast<uint64_t>(c10::multiply_integers(s.shape)) * c10::elementSize(s.dtype);
  nlohmann::json weight_map = nlohmann::json::object();
  for (size_t i = 0; i < shards.size(); ++i) {
    char name[64];
    std::snprintf(name, sizeof name, st ? "model-%05zu-of-%05zu.safetensors" : "pytorch_model-%05zu-of-%05zu.bin",
                  i + 1, shards.size());
    write((fs::path(dir) / name).string(), shards[i]);
    for (const size_t k : shards[i]) weight_map[specs[k].name] = name;
  }
  nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  write_file_atomic((fs::path(dir) / (st ? "model.safetensors.index.json" : "pytorch_model.bin.index.json")).string(),
                    index.dump(2) + "\n");
}

}  // namespace

void save_weights(const std::string& dir, const std::vector<TensorSpec>& specs,
                  const std::function<torch::Tensor(const TensorSpec&)>& make, WeightFormat format,
                  uint64_t max_shard_bytes) {
  const bool st = format == WeightFormat::Safetensors;
  write_layout(
      dir, specs, st, cut_shards(specs, max_shard_bytes),
      [&](const std::string& path, const std::vector<size_t>& shard) {
        StateDict part;
        for (const size_t i : shard) {
          auto t = make(specs[i]);
          if (t.sizes() != c10::IntArrayRef(specs[i].shape) || t.scalar_type() != specs[i].dtype)
            throw Error("save_weights: " + specs[i].name + " was made with another shape or dtype than its spec");
          part[specs[i].name] = std::move(t);
        }
        if (st)
          save_safetensors(path, part);
        else
          save_torch_bin(path, part);
      });
}

std::vector<size_t> stream_order(const std::vector<TensorSpec>& specs, uint64_t max_shard_bytes) {
  std::vector<size_t> out;
  for (const auto& shard : cut_shards(specs, max_shard_bytes))
    for (const size_t k : safetensors_order(members(specs, shard))) out.push_back(shard[k]);
  return out;
}

void stream_weights(const std::string& dir, const std::vector<TensorSpec>& specs,
                    const std::function<torch::Tensor(const TensorSpec&)>& make, uint64_t max_shard_bytes) {
  write_layout(dir, specs, true, cut_shards(specs, max_shard_bytes),
               [&](const std::string& path, const std::vector<size_t>& shard) {
                 save_safetensors(path, members(specs, shard), make);
               });
}

}  // namespace qalign::io
