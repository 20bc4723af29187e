#pragma once
// Hugging Face checkpoint layouts: one weights file, or shards listed by an index
// (model.safetensors.index.json / pytorch_model.bin.index.json).
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "qalign/io/safetensors.h"
#include "qalign/io/state_dict.h"

namespace qalign::io {

// The weights file or index a path stands for. A folder is searched in HF's order of
// preference: model.safetensors, model.safetensors.index.json, pytorch_model.bin,
// pytorch_model.bin.index.json.
std::string resolve_weights(const std::string& path);

// The weights files behind a resolved weights path: itself, or the shards its index lists (each
// must exist; a missing one fails naming the index and a tensor it holds).
std::vector<std::string> weight_files(const std::string& resolved);

// Name -> tensor for a folder, an index file or a weights file (.safetensors or .bin).
StateDict load_weights(const std::string& path);

// Calls f(name, part, offset) for every tensor of the same, one file at a time: `part` holds
// elements [offset, offset + part.numel()) of the flattened tensor. Safetensors tensors come in
// pieces of at most 16 MiB whose pages are released once f returns, so reading adds one piece of
// resident memory, not the file; a .bin file is read whole and its tensors come in one piece.
void for_each_weight(const std::string& path,
                     const std::function<void(const std::string& name, const torch::Tensor& part, int64_t offset)>& f);

struct TensorSummary {
  std::string name, dtype;  // dtype in safetensors spelling
  std::vector<int64_t> shape;
};
// Names, dtypes and shapes without reading tensor data (safetensors headers, .bin pickles).
std::vector<TensorSummary> list_weights(const std::string& path);

enum class WeightFormat { Safetensors, TorchBin };

// Writes `tensors` into `dir` in the HF layout: a single model.safetensors / pytorch_model.bin
// when it fits in `max_shard_bytes`, else numbered shards plus an index whose weight_map names
// every tensor exactly once. Each file is written atomically; the index last.
void save_weights(const std::string& dir, const StateDict& tensors, WeightFormat format,
                  uint64_t max_shard_bytes = 5ull << 30);

// The same layout for tensors made on demand: shards are filled in the order of `specs`, and
// make(spec) is called for a shard's tensors (in the order of `specs`) only when that shard is
// written, so one shard is in memory at a time (a model larger than memory can be written).
void save_weights(const std::string& dir, const std::vector<TensorSpec>& specs,
                  const std::function<torch::Tensor(const TensorSpec&)>& make, WeightFormat format,
                  uint64_t max_shard_bytes = 5ull << 30);

// The same layout in safetensors, written tensor by tensor: make(spec) is called in stream_order
// (shard by shard, each in its file's order) and each tensor is written before the next is made,
// so one tensor is in memory at a time. A process that follows the writer call by call (a ZeRO-3
// rank gathering each unit with the rank that writes it) walks stream_order. Indices into `specs`.
void stream_weights(const std::string& dir, const std::vector<TensorSpec>& specs,
                    const std::function<torch::Tensor(const TensorSpec&)>& make, uint64_t max_shard_bytes = 5ull << 30);
std::vector<size_t> stream_order(const std::vector<TensorSpec>& specs, uint64_t max_shard_bytes = 5ull << 30);

}  // namespace qalign::io
