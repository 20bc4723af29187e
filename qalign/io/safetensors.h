#pragma once
// safetensors: an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}, then the bytes.
// Written by hand: no C++ library for it ships in Debian, and the format is 100 lines.
#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "qalign/io/state_dict.h"

namespace qalign::io {

struct TensorInfo {
  std::string name;
  std::string dtype;  // safetensors name, e.g. "BF16"
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // offsets into the data section
};

// A validated, memory-mapped safetensors file. Tensors it returns share the mapping (copy on
// write, so writing to them never touches the file) when their bytes are aligned for the dtype.
class SafetensorsFile {
 public:
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // In file order (by offset).
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  bool contains(const std::string& name) const { return index_.count(name) > 0; }
  torch::Tensor get(const std::string& name) const;
  // Gives the mapped pages of bytes [begin, end) of tensor `name` back to the kernel (a later get
  // reads them again from the file): streaming a large file through memory then costs a piece of
  // it, not the file.
  void release(const std::string& name, uint64_t begin, uint64_t end) const;
  StateDict load_all() const;

 private:
  SafetensorsFile() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  const uint8_t* data_ = nullptr;  // start of the data section
  std::map<std::string, std::string> metadata_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::weak_ptr<SafetensorsFile> self_;
};

// A tensor to be written, before it is made.
struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  torch::ScalarType dtype;
};

// Where save_safetensors puts `specs` in the file, as the reference writer does: by dtype size
// (largest first), then by name. Indices into `specs`.
std::vector<size_t> safetensors_order(const std::vector<TensorSpec>& specs);

// The same file written tensor by tensor: make(spec) is called in safetensors_order and each
// tensor written before the next is made, so one tensor is in memory at a time.
void save_safetensors(const std::string& path, const std::vector<TensorSpec>& specs,
                      const std::function<torch::Tensor(const TensorSpec&)>& make,
                      const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

// Writes `tensors` as the reference writer does (sorted by dtype size, then name; header padded
// with spaces to 8 bytes), to a temporary name, fsync'ed, then renamed over `path`.
void save_safetensors(const std::string& path, const StateDict& tensors,
                      const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

}  // namespace qalign::io
