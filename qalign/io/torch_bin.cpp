#include "qalign/io/torch_bin.h"

#include <caffe2/serialize/inline_container.h>

#include <set>
#include <tuple>

#include "qalign/base/atomic_file.h"
#include "qalign/base/error.h"
#include "qalign/base/regular_file.h"
#include "qalign/io/pickle.h"

namespace qalign::io {

namespace {

// Some 200 000 tensors' worth.
constexpr size_t kMaxPickleBytes = 64u << 20;

// With `read_data` false every tensor is on the meta device: shapes and dtypes from data.pkl,
// each storage's size checked against its record, and no tensor bytes read.
StateDict read_torch_bin(const std::string& path, bool read_data) {
  require_regular_file(path);
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
  try {
    reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
  } catch (const c10::Error& e) {
    fail(path, "", std::string("not a PyTorch zip checkpoint (torch.save format): ") + e.what_without_backtrace());
  }
  try {
    if (reader->hasRecord("byteorder")) {
      auto [ptr, n] = reader->getRecord("byteorder");
      const std::string order(static_cast<const char*>(ptr.get()), n);
      if (order != "little") fail(path, "byteorder", "big-endian checkpoints are not supported");
    }
    if (!reader->hasRecord("data.pkl")) fail(path, "data.pkl", "missing from the archive");
    // Checked before it is inflated: a few kB of deflated bytes can stand for gigabytes.
    if (const size_t n = reader->getRecordSize("data.pkl"); n > kMaxPickleBytes)
      fail(path, "data.pkl",
           std::to_string(n) + " bytes, above the " + std::to_string(kMaxPickleBytes) +
               " a state dict's pickle may hold (a few hundred bytes per tensor)");
    auto [pkl, pkl_size] = reader->getRecord("data.pkl");
    auto loader = [&](const std::string& key, torch::Dtype dtype, int64_t numel) -> torch::Tensor {
      const std::string rec = "data/" + key;
      if (!reader->hasRecord(rec)) fail(path, rec, "storage record missing from the archive");
      at::DataPtr data;
      size_t n = reader->getRecordSize(rec);
      if (read_data) std::tie(data, n) = reader->getRecord(rec);
      // Divided rather than multiplied: a numel near 2^62 times the element size wraps to a
      // small number, which an empty record would then match.
      const size_t element = c10::elementSize(dtype), count = static_cast<size_t>(numel);
      if (n % element != 0 || n / element != count)
        fail(path, rec,
             "storage holds " + std::to_string(n) + " bytes, expected " +
                 (count <= SIZE_MAX / element ? std::to_string(count * element)
                                              : std::to_string(count) + " x " + std::to_string(element)));
      if (!read_data) return torch::empty({numel}, torch::TensorOptions().dtype(dtype).device(torch::kMeta));
      auto holder = std::make_shared<at::DataPtr>(std::move(data));
      return torch::from_blob(
          holder->get(), {numel}, [holder](void*) {}, torch::TensorOptions().dtype(dtype));
    };
    StateDict out;
    for (auto& [name, t] : unpickle_state_dict(static_cast<const uint8_t*>(pkl.get()), pkl_size, path, loader)) {
      if (!out.emplace(name, t).second) fail(path, name, "tensor name appears twice");
    }
    return out;
  } catch (const c10::Error& e) {
    fail(path, "", std::string("corrupt archive: ") + e.what_without_backtrace());
  }
}

}  // namespace

StateDict load_torch_bin(const std::string& path) { return read_torch_bin(path, true); }

StateDict list_torch_bin(const std::string& path) { return read_torch_bin(path, false); }

namespace {

// Pickle protocol 2, as torch.save writes a state dict: an OrderedDict of
// _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks) calls whose storages
// are persistent ids ('storage', torch.<Type>Storage, key, 'cpu', numel).
class StateDictPickler {
 public:
  std::string out;

  void global(const std::string& module, const std::string& name) { out += "c" + module + "\n" + name + "\n"; }
  void str(const std::string& s) {
    out += 'X';
    put_le(s.size(), 4);
    out += s;
  }
  void integer(int64_t v) {
    if (v >= INT32_MIN && v <= INT32_MAX) {
      out += 'J';
      put_le(static_cast<uint32_t>(static_cast<int32_t>(v)), 4);
    } else {
      out += '\x8a';
      out += '\x08';
      put_le(static_cast<uint64_t>(v), 8);
    }
  }
  void int_tuple(c10::IntArrayRef xs) {
    out += '(';
    for (auto x : xs) integer(x);
    out += 't';
  }
  void empty_ordered_dict() {
    global("collections", "OrderedDict");
    out += ")R";
  }

 private:
  void put_le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
  }
};

std::string storage_type(torch::Dtype d) {
  switch (d) {
    case torch::kFloat64:
      return "DoubleStorage";
    case torch::kFloat32:
      return "FloatStorage";
    case torch::kFloat16:
      return "HalfStorage";
    case torch::kBFloat16:
      return "BFloat16Storage";
    case torch::kInt64:
      return "LongStorage";
    case torch::kInt32:
      return "IntStorage";
    case torch::kInt16:
      return "ShortStorage";
    case torch::kInt8:
      return "CharStorage";
    case torch::kUInt8:
      return "ByteStorage";
    case torch::kBool:
      return "BoolStorage";
    default:
      throw Error(std::string("cannot save dtype ") + c10::toString(d) + " in a .bin checkpoint");
  }
}

}  // namespace

void save_torch_bin(const std::string& path, const StateDict& tensors) {
  std::vector<torch::Tensor> storages;
  StateDictPickler p;
  p.out = "\x80\x02";
  p.empty_ordered_dict();
  p.out += '(';
  for (const auto& [name, tensor] : tensors) {
    const auto t = tensor.detach().to(torch::kCPU).contiguous();
    p.str(name);
    p.global("torch._utils", "_rebuild_tensor_v2");
    p.out += "((";
    p.str("storage");
    p.global("torch", storage_type(t.scalar_type()));
    p.str(std::to_string(storages.size()));
    p.str("cpu");
    p.integer(t.numel());
    p.out += "tQ";
    p.integer(0);
    p.int_tuple(t.sizes());
    p.int_tuple(t.strides());
    p.out += '\x89';
    p.empty_ordered_dict();
    p.out += "tR";
    storages.push_back(t);
  }
  p.out += "u.";

  AtomicWriter w(path);
  {
    caffe2::serialize::PyTorchStreamWriter zip([&](const void* data, size_t n) -> size_t {
      w.write(data, n);
      return n;
    });
    zip.writeRecord("data.pkl", p.out.data(), p.out.size());
    zip.writeRecord("byteorder", "little", 6);
    for (size_t i = 0; i < storages.size(); ++i)
      zip.writeRecord("data/" + std::to_string(i), storages[i].data_ptr(),
                      storages[i].numel() * storages[i].element_size());
    zip.writeEndOfFile();
  }
  w.commit();
}

}  // namespace qalign::io
