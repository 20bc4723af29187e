#include "qalign/io/pickle.h"

#include <cstring>
#include <map>
#include <memory>

#include "qalign/base/error.h"

namespace qalign::io {

namespace {

struct Value;
// Values are owned by the Unpickler's arena, not by each other: a hostile pickle can build cycles
// (a list appended to itself through the memo), which reference counting would leak, and nesting
// deep enough that a recursive destructor would overflow the stack.
using Ptr = Value*;

// The few Python objects a state dict pickle builds.
struct Value {
  enum class Kind { None, Bool, Int, Float, Str, Bytes, Tuple, List, Dict, Global, StorageType, Storage, Tensor };
  Kind kind = Kind::None;
  int64_t i = 0;
  double f = 0;
  std::string s;                          // Str, Bytes, Global ("module.name")
  std::vector<Ptr> items;                 // Tuple, List
  std::vector<std::pair<Ptr, Ptr>> dict;  // Dict, in insertion order
  torch::Dtype dtype = torch::kFloat32;   // StorageType, Storage
  torch::Tensor tensor;                   // Storage (flat), Tensor
};

const std::map<std::string, torch::Dtype>& storage_types() {
  static const std::map<std::string, torch::Dtype> m = {
      {"torch.DoubleStorage", torch::kFloat64}, {"torch.FloatStorage", torch::kFloat32},
      {"torch.HalfStorage", torch::kFloat16},   {"torch.BFloat16Storage", torch::kBFloat16},
      {"torch.LongStorage", torch::kInt64},     {"torch.IntStorage", torch::kInt32},
      {"torch.ShortStorage", torch::kInt16},    {"torch.CharStorage", torch::kInt8},
      {"torch.ByteStorage", torch::kUInt8},     {"torch.BoolStorage", torch::kBool},
  };
  return m;
}

constexpr size_t kMaxStack = 1 << 20;
// Values pushed and memo entries stored, together: a state dict's pickle makes about 20 per
// tensor, so this admits some 100 000 tensors while a hostile pickle (a few kB of deflated
// opcodes can push tens of millions of references) stops at ~300 MB.
constexpr size_t kMaxObjects = 1 << 21;

class Unpickler {
 public:
  Unpickler(const uint8_t* data, size_t size, const std::string& source, const StorageLoader& loader)
      : p_(data), end_(data + size), source_(source), loader_(loader) {}

  Ptr run() {
    while (true) {
      const uint8_t op = byte();
      switch (op) {
        case 0x80:
          byte();
          break;  // PROTO
        case 0x95:
          take(8);
          break;     // FRAME: framing only
        case '.': {  // STOP
          if (stack_.size() != 1) bad("STOP with " + std::to_string(stack_.size()) + " values on the stack");
          return stack_.back();
        }
        case '(':
          marks_.push_back(stack_.size());
          break;  // MARK
        case 'N':
          push(make(Value::Kind::None));
          break;
        case 0x88:
        case 0x89: {  // NEWTRUE / NEWFALSE
          auto v = make(Value::Kind::Bool);
          v->i = op == 0x88;
          push(v);
          break;
        }
        case 'K':
          push_int(byte());
          break;  // BININT1
        case 'M':
          push_int(le(2));
          break;  // BININT2
        case 'J':
          push_int(static_cast<int32_t>(le(4)));
          break;      // BININT
        case 0x8a: {  // LONG1
          const size_t n = byte();
          if (n > 8) bad("LONG1 integer wider than 64 bits");
          const uint8_t* b = take(n);
          uint64_t u = 0;
          for (size_t k = 0; k < n; ++k) u |= uint64_t(b[k]) << (8 * k);
          if (n > 0 && n < 8 && (b[n - 1] & 0x80)) u |= ~uint64_t(0) << (8 * n);
          push_int(static_cast<int64_t>(u));
          break;
        }
        case 'G': {  // BINFLOAT, big-endian
          const uint8_t* b = take(8);
          uint64_t u = 0;
          for (int k = 0; k < 8; ++k) u = (u << 8) | b[k];
          auto v = make(Value::Kind::Float);
          std::memcpy(&v->f, &u, 8);
          push(v);
          break;
        }
        case 'X':
          push_str(Value::Kind::Str, le(4));
          break;  // BINUNICODE
        case 0x8c:
          push_str(Value::Kind::Str, byte());
          break;  // SHORT_BINUNICODE
        case 0x8d:
          push_str(Value::Kind::Str, le(8));
          break;  // BINUNICODE8
        case 'B':
          push_str(Value::Kind::Bytes, le(4));
          break;  // BINBYTES
        case 'C':
          push_str(Value::Kind::Bytes, byte());
          break;  // SHORT_BINBYTES
        case ')':
          push(make(Value::Kind::Tuple));
          break;  // EMPTY_TUPLE
        case ']':
          push(make(Value::Kind::List));
          break;  // EMPTY_LIST
        case '}':
          push(make(Value::Kind::Dict));
          break;     // EMPTY_DICT
        case 't': {  // TUPLE
          auto v = make(Value::Kind::Tuple);
          v->items = pop_mark();
          push(v);
          break;
        }
        case 0x85:
        case 0x86:
        case 0x87: {  // TUPLE1..3
          const size_t n = op - 0x84;
          auto v = make(Value::Kind::Tuple);
          v->items.resize(n);
          for (size_t k = n; k-- > 0;) v->items[k] = pop();
          push(v);
          break;
        }
        case 'q':
          remember(byte());
          break;  // BINPUT
        case 'r':
          remember(le(4));
          break;  // LONG_BINPUT
        case 0x94:
          remember(memo_.size());
          break;  // MEMOIZE
        case 'h':
          push(memo(byte()));
          break;  // BINGET
        case 'j':
          push(memo(le(4)));
          break;     // LONG_BINGET
        case 'c': {  // GLOBAL
          const std::string module = line(), name = line();
          push(global(module, name));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          auto name = pop(), module = pop();
          if (module->kind != Value::Kind::Str || name->kind != Value::Kind::Str) bad("STACK_GLOBAL needs two strings");
          push(global(module->s, name->s));
          break;
        }
        case 'a': {  // APPEND
          auto v = pop();
          list_of(top())->items.push_back(v);
          break;
        }
        case 'e': {  // APPENDS
          auto vs = pop_mark();
          auto l = list_of(top());
          l->items.insert(l->items.end(), vs.begin(), vs.end());
          break;
        }
        case 's': {  // SETITEM
          auto v = pop(), k = pop();
          dict_of(top())->dict.emplace_back(k, v);
          break;
        }
        case 'u': {  // SETITEMS
          auto vs = pop_mark();
          if (vs.size() % 2) bad("SETITEMS with an odd number of values");
          auto d = dict_of(top());
          for (size_t k = 0; k < vs.size(); k += 2) d->dict.emplace_back(vs[k], vs[k + 1]);
          break;
        }
        case 'Q':
          push(persistent_load(pop()));
          break;     // BINPERSID
        case 'R': {  // REDUCE
          auto args = pop(), fn = pop();
          push(call(fn, args));
          break;
        }
        case 'b': {  // BUILD
          auto state = pop();
          // OrderedDict's state is its attribute dict ({"_metadata": ...}): nothing to apply.
          if (top()->kind != Value::Kind::Dict) bad("BUILD on something other than a dict");
          (void)state;
          break;
        }
        default: {
          char hex[8];
          std::snprintf(hex, sizeof hex, "0x%02x", op);
          bad(std::string("unsupported pickle opcode ") + hex + " (not used by state dicts)");
        }
      }
    }
  }

 private:
  [[noreturn]] void bad(const std::string& what) const {
    fail(source_, "data.pkl", what + " at byte " + std::to_string(pos()));
  }
  size_t pos() const { return static_cast<size_t>(p_ - start_); }
  Ptr make(Value::Kind k) {
    arena_.push_back(std::make_unique<Value>());
    arena_.back()->kind = k;
    return arena_.back().get();
  }
  const uint8_t* take(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) bad("pickle is truncated");
    const uint8_t* r = p_;
    p_ += n;
    return r;
  }
  uint8_t byte() { return *take(1); }
  uint64_t le(size_t n) {
    const uint8_t* b = take(n);
    uint64_t u = 0;
    for (size_t k = 0; k < n; ++k) u |= uint64_t(b[k]) << (8 * k);
    return u;
  }
  std::string line() {
    const uint8_t* nl = static_cast<const uint8_t*>(std::memchr(p_, '\n', static_cast<size_t>(end_ - p_)));
    if (!nl) bad("pickle is truncated inside a GLOBAL name");
    std::string s(reinterpret_cast<const char*>(p_), static_cast<size_t>(nl - p_));
    p_ = nl + 1;
    return s;
  }
  void push(Ptr v) {
    if (stack_.size() >= kMaxStack) bad("pickle stack too deep");
    count_object();
    stack_.push_back(std::move(v));
  }
  void remember(uint64_t key) {
    count_object();
    memo_[key] = top();
  }
  void count_object() {
    if (++objects_ > kMaxObjects)
      bad("the pickle builds more than " + std::to_string(kMaxObjects) +
          " objects, where a state dict needs about 20 per tensor: not a state dict, or a damaged one");
  }
  void push_int(int64_t x) {
    auto v = make(Value::Kind::Int);
    v->i = x;
    push(v);
  }
  void push_str(Value::Kind k, uint64_t n) {
    if (n > static_cast<uint64_t>(end_ - p_)) bad("string runs past the end of the pickle");
    auto v = make(k);
    const uint8_t* b = take(n);
    v->s.assign(reinterpret_cast<const char*>(b), n);
    push(v);
  }
  Ptr pop() {
    if (stack_.size() <= (marks_.empty() ? 0 : marks_.back())) bad("pickle stack underflow");
    Ptr v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  Ptr top() {
    if (stack_.empty()) bad("pickle stack underflow");
    return stack_.back();
  }
  std::vector<Ptr> pop_mark() {
    if (marks_.empty()) bad("no MARK on the stack");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Ptr> vs(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return vs;
  }
  Ptr memo(uint64_t k) {
    auto it = memo_.find(k);
    if (it == memo_.end()) bad("memo key " + std::to_string(k) + " was never stored");
    return it->second;
  }
  Ptr list_of(const Ptr& v) {
    if (v->kind != Value::Kind::List) bad("APPEND to something other than a list");
    return v;
  }
  Ptr dict_of(const Ptr& v) {
    if (v->kind != Value::Kind::Dict) bad("SETITEM on something other than a dict");
    return v;
  }

  Ptr global(const std::string& module, const std::string& name) {
    const std::string full = module + "." + name;
    auto st = storage_types().find(full);
    if (st != storage_types().end()) {
      auto v = make(Value::Kind::StorageType);
      v->dtype = st->second;
      v->s = full;
      return v;
    }
    if (full == "collections.OrderedDict" || full == "torch._utils._rebuild_tensor_v2" ||
        full == "torch._utils._rebuild_parameter") {
      auto v = make(Value::Kind::Global);
      v->s = full;
      return v;
    }
    bad("refusing global " + full + " (a state dict only needs tensors, storages and OrderedDict)");
  }

  // ('storage', StorageType, key, location, numel)
  Ptr persistent_load(const Ptr& pid) {
    if (pid->kind != Value::Kind::Tuple || pid->items.size() != 5 || pid->items[0]->kind != Value::Kind::Str ||
        pid->items[0]->s != "storage" || pid->items[1]->kind != Value::Kind::StorageType ||
        pid->items[2]->kind != Value::Kind::Str || pid->items[4]->kind != Value::Kind::Int)
      bad("unexpected persistent id (expected ('storage', type, key, location, numel))");
    const std::string& key = pid->items[2]->s;
    auto cached = storages_.find(key);
    if (cached != storages_.end()) return cached->second;
    const int64_t numel = pid->items[4]->i;
    if (numel < 0) bad("storage " + key + " has a negative size");
    auto v = make(Value::Kind::Storage);
    v->dtype = pid->items[1]->dtype;
    v->s = key;
    v->tensor = loader_(key, v->dtype, numel);
    storages_[key] = v;
    return v;
  }

  std::vector<int64_t> ints(const Ptr& t, const char* what) {
    if (t->kind != Value::Kind::Tuple) bad(std::string(what) + " must be a tuple of integers");
    std::vector<int64_t> out;
    for (const auto& x : t->items) {
      if (x->kind != Value::Kind::Int) bad(std::string(what) + " must be a tuple of integers");
      out.push_back(x->i);
    }
    return out;
  }

  Ptr call(const Ptr& fn, const Ptr& args) {
    if (fn->kind != Value::Kind::Global || args->kind != Value::Kind::Tuple) bad("REDUCE of a non-callable");
    const auto& a = args->items;
    if (fn->s == "collections.OrderedDict") {
      if (!a.empty()) bad("OrderedDict with arguments");
      return make(Value::Kind::Dict);
    }
    if (fn->s == "torch._utils._rebuild_parameter") {
      if (a.size() < 1 || a[0]->kind != Value::Kind::Tensor) bad("_rebuild_parameter without a tensor");
      return a[0];
    }
    // _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])
    if (a.size() < 4 || a[0]->kind != Value::Kind::Storage || a[1]->kind != Value::Kind::Int)
      bad("malformed _rebuild_tensor_v2 arguments");
    const auto size = ints(a[2], "tensor size"), stride = ints(a[3], "tensor stride");
    if (size.size() != stride.size()) bad("tensor size and stride differ in length");
    const int64_t offset = a[1]->i, numel = a[0]->tensor.numel();
    int64_t last = offset;
    bool empty = false;
    for (size_t k = 0; k < size.size(); ++k) {
      if (size[k] < 0 || stride[k] < 0) bad("negative tensor size or stride");
      if (size[k] == 0)
        empty = true;
      else if (size[k] - 1 > (INT64_MAX - last) / std::max<int64_t>(stride[k], 1))
        bad("tensor extent overflows");
      else
        last += (size[k] - 1) * stride[k];
    }
    if (offset < 0 || (!empty && last >= numel))
      bad("tensor view runs past its storage " + a[0]->s + " (" + std::to_string(numel) + " elements)");
    auto v = make(Value::Kind::Tensor);
    v->tensor = empty ? torch::empty(size, a[0]->tensor.options()) : a[0]->tensor.as_strided(size, stride, offset);
    return v;
  }

  const uint8_t* p_;
  const uint8_t* const end_;
  const uint8_t* const start_ = p_;
  const std::string& source_;
  const StorageLoader& loader_;
  std::vector<std::unique_ptr<Value>> arena_;
  std::vector<Ptr> stack_;
  std::vector<size_t> marks_;
  std::map<uint64_t, Ptr> memo_;
  std::map<std::string, Ptr> storages_;
  size_t objects_ = 0;
};

}  // namespace

std::vector<std::pair<std::string, torch::Tensor>> unpickle_state_dict(const uint8_t* data, size_t size,
                                                                       const std::string& source,
                                                                       const StorageLoader& load_storage) {
  Unpickler u(data, size, source, load_storage);
  Ptr root = u.run();
  if (root->kind != Value::Kind::Dict) fail(source, "data.pkl", "the pickle is not a dict of tensors");
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& [k, v] : root->dict) {
    if (k->kind != Value::Kind::Str) fail(source, "data.pkl", "a state-dict key is not a string");
    if (v->kind != Value::Kind::Tensor) fail(source, k->s, "value is not a tensor");
    out.emplace_back(k->s, v->tensor);
  }
  return out;
}

}  // namespace qalign::io
