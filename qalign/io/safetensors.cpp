#include "qalign/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "qalign/base/atomic_file.h"
#include "qalign/base/error.h"
#include "qalign/base/json_file.h"
#include "qalign/base/regular_file.h"

namespace qalign::io {

namespace {

// The reference reader's limit (safetensors' MAX_HEADER_SIZE): a longer header is no file it
// would load, and parsing one costs seconds and memory a multiple of its size.
constexpr uint64_t kMaxHeader = 100'000'000;

std::vector<int64_t> parse_shape(const nlohmann::json& j, const std::string& path, const std::string& field) {
  if (!j.is_array()) fail(path, field, "\"shape\" must be a list of non-negative integers");
  std::vector<int64_t> shape;
  for (const auto& d : j) {
    if (!d.is_number_unsigned()) fail(path, field, "\"shape\" must be a list of non-negative integers");
    const uint64_t v = d.get<uint64_t>();
    if (v > (uint64_t(1) << 48)) fail(path, field, "dimension " + std::to_string(v) + " is too large");
    shape.push_back(static_cast<int64_t>(v));
  }
  return shape;
}

TensorInfo parse_entry(const std::string& path, const std::string& name, const nlohmann::json& v, uint64_t data_size) {
  if (!v.is_object()) fail(path, name, "entry must be an object with dtype, shape, data_offsets");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!v.contains(key)) fail(path, name, std::string("missing \"") + key + "\"");
  if (!v["dtype"].is_string()) fail(path, name, "\"dtype\" must be a string");
  TensorInfo t;
  t.name = name;
  t.dtype = v["dtype"].get<std::string>();
  const auto dtype = dtype_from_safetensors(t.dtype, path, name);
  t.shape = parse_shape(v["shape"], path, name);
  const auto& off = v["data_offsets"];
  if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
    fail(path, name, "\"data_offsets\" must be two non-negative integers [begin, end]");
  t.begin = off[0].get<uint64_t>();
  t.end = off[1].get<uint64_t>();
  if (t.end < t.begin) fail(path, name, "data_offsets end precedes begin");
  if (t.end > data_size)
    fail(path, name,
         "data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) + "] run past the data section (" +
             std::to_string(data_size) + " bytes): the file is truncated or its header is wrong");
  // Overflow-safe numel * element size.
  unsigned __int128 bytes_needed = c10::elementSize(dtype);
  for (auto d : t.shape) {
    bytes_needed *= static_cast<uint64_t>(d);
    if (bytes_needed > (static_cast<unsigned __int128>(1) << 64)) break;
  }
  if (bytes_needed != t.end - t.begin)
    fail(path, name,
         "shape x dtype needs " +
             std::to_string(static_cast<uint64_t>(std::min<unsigned __int128>(bytes_needed, UINT64_MAX))) +
             " bytes but data_offsets span " + std::to_string(t.end - t.begin));
  return t;
}

std::map<std::string, std::string> parse_metadata(const std::string& path, const nlohmann::json& v) {
  if (!v.is_object()) fail(path, "__metadata__", "must be an object of strings");
  std::map<std::string, std::string> metadata;
  for (auto m = v.begin(); m != v.end(); ++m) {
    if (!m.value().is_string()) fail(path, "__metadata__." + m.key(), "must be a string");
    metadata[m.key()] = m.value().get<std::string>();
  }
  return metadata;
}

}  // namespace

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  std::shared_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->self_ = f;
  f->path_ = path;
  require_regular_file(path);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, "", std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, "", "not a regular file");
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    fail(path, "header",
         "truncated: " + std::to_string(size) + " bytes, but a safetensors file starts with an 8-byte header length");
  }
  f->map_ = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (f->map_ == MAP_FAILED) {
    f->map_ = nullptr;
    fail(path, "", std::string("mmap failed: ") + std::strerror(errno));
  }
  f->map_size_ = size;
  const auto* bytes = static_cast<const uint8_t*>(f->map_);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  if (header_len > kMaxHeader)
    fail(path, "header",
         "header length " + std::to_string(header_len) +
             " exceeds the 100 MB (100000000 bytes) limit of the safetensors format's reference reader");
  if (header_len > size - 8)
    fail(path, "header",
         "header length " + std::to_string(header_len) + " runs past the end of the file (" + std::to_string(size) +
             " bytes): the file is truncated or not safetensors");
  const uint64_t data_size = size - 8 - header_len;
  f->data_ = bytes + 8 + header_len;

  // Member by member: the header's tree never exists whole, only each entry's.
  bool metadata_seen = false;
  try {
    for_each_json_member(std::string_view(reinterpret_cast<const char*>(bytes + 8), header_len), path,
                         "a JSON object of tensor entries", [&](std::string& name, nlohmann::json&& v) {
                           if (name != "__metadata__") {
                             f->tensors_.push_back(parse_entry(path, name, v, data_size));
                           } else if (!metadata_seen) {
                             f->metadata_ = parse_metadata(path, v);
                             metadata_seen = true;
                           } else {
                             fail(path, name, "appears twice in the header");
                           }
                         });
  } catch (const nlohmann::json::exception& e) {
    fail(path, "header", std::string("not valid JSON: ") + e.what());
  }
  std::sort(f->tensors_.begin(), f->tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  for (size_t i = 0; i < f->tensors_.size(); ++i)
    if (!f->index_.emplace(f->tensors_[i].name, i).second)
      fail(path, f->tensors_[i].name, "tensor name appears twice in the header");
  for (size_t i = 1; i < f->tensors_.size(); ++i) {
    const auto& prev = f->tensors_[i - 1];
    const auto& cur = f->tensors_[i];
    if (cur.begin < prev.end && cur.end > cur.begin)
      fail(path, cur.name, "data_offsets overlap those of \"" + prev.name + "\"");
  }
  return f;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, map_size_);
}

torch::Tensor SafetensorsFile::get(const std::string& name) const {
  const auto it = index_.find(name);
  if (it == index_.end()) fail(path_, name, "no such tensor in the file");
  const TensorInfo& t = tensors_[it->second];
  const auto dtype = dtype_from_safetensors(t.dtype, path_, name);
  const auto opts = torch::TensorOptions().dtype(dtype);
  void* ptr = const_cast<uint8_t*>(data_ + t.begin);
  if (t.end == t.begin) return torch::empty(t.shape, opts);
  if (reinterpret_cast<uintptr_t>(ptr) % c10::elementSize(dtype) != 0)
    return torch::from_blob(ptr, t.shape, opts).clone();
  auto keep = self_.lock();
  return torch::from_blob(
      ptr, t.shape, [keep](void*) {}, opts);
}

void SafetensorsFile::release(const std::string& name, uint64_t begin, uint64_t end) const {
  const auto it = index_.find(name);
  if (it == index_.end()) return;
  const TensorInfo& t = tensors_[it->second];
  end = std::min(end, t.end - t.begin);
  if (begin >= end) return;
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  // Whole pages inside the range only: bytes next to it stay mapped.
  const auto first = (reinterpret_cast<uintptr_t>(data_ + t.begin + begin) + page - 1) / page * page;
  const auto last = reinterpret_cast<uintptr_t>(data_ + t.begin + end) / page * page;
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

StateDict SafetensorsFile::load_all() const {
  StateDict out;
  for (const auto& t : tensors_) out[t.name] = get(t.name);
  return out;
}

std::vector<size_t> safetensors_order(const std::vector<TensorSpec>& specs) {
  std::vector<size_t> order(specs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const size_t ea = c10::elementSize(specs[a].dtype), eb = c10::elementSize(specs[b].dtype);
    return ea != eb ? ea > eb : specs[a].name < specs[b].name;
  });
  return order;
}

void save_safetensors(const std::string& path, const std::vector<TensorSpec>& specs,
                      const std::function<torch::Tensor(const TensorSpec&)>& make,
                      const std::map<std::string, std::string>& metadata) {
  const auto order = safetensors_order(specs);
  std::string header = "{";
  if (!metadata.empty()) header += "\"__metadata__\":" + nlohmann::json(metadata).dump() + ",";
  uint64_t offset = 0;
  for (const size_t i : order) {
    const auto& spec = specs[i];
    const uint64_t n = static_cast<uint64_t>(c10::multiply_integers(spec.shape)) * c10::elementSize(spec.dtype);
    header += nlohmann::json(spec.name).dump() + ":{\"dtype\":\"" + dtype_to_safetensors(spec.dtype) +
              "\",\"shape\":" + nlohmann::json(spec.shape).dump() + ",\"data_offsets\":[" + std::to_string(offset) +
              "," + std::to_string(offset + n) + "]},";
    offset += n;
  }
  header.back() = '}';
  if (header == "}") header = "{}";
  while ((8 + header.size()) % 8 != 0) header += ' ';
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(static_cast<uint64_t>(header.size()) >> (8 * i));
  AtomicWriter w(path);
  w.write(len, 8);
  w.write(header.data(), header.size());
  for (const size_t i : order) {
    const auto& spec = specs[i];
    // Tensors on a device come to the host one at a time, as they are written.
    const auto host = make(spec).detach().to(torch::kCPU).contiguous();
    if (host.sizes() != c10::IntArrayRef(spec.shape) || host.scalar_type() != spec.dtype)
      throw Error("save_safetensors: " + spec.name + " was made with another shape or dtype than its spec");
    w.write(host.data_ptr(), host.numel() * host.element_size());
  }
  w.commit();
}

void save_safetensors(const std::string& path, const StateDict& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<TensorSpec> specs;
  for (const auto& [name, t] : tensors) specs.push_back({name, t.sizes().vec(), t.scalar_type()});
  save_safetensors(
      path, specs, [&](const TensorSpec& s) { return tensors.at(s.name); }, metadata);
}

}  // namespace qalign::io
