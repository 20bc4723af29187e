// Malformed checkpoints: each gives a qalign::Error naming the file and the offending field,
// never a crash. Table-driven; YAML and JSON configs have their own table in test_config.cpp.
#include <gtest/gtest.h>

#include <caffe2/serialize/inline_container.h>

#include <filesystem>
#include <fstream>

#include "qalign/base/atomic_file.h"
#include "qalign/base/error.h"
#include "qalign/io/checkpoint.h"
#include "qalign/io/safetensors.h"
#include "qalign/io/torch_bin.h"
#include "qalign/io/weights.h"
#include "tests/support/fixtures.h"

namespace fs = std::filesystem;
using namespace qalign;

namespace {

// Removed with the process's statics at exit.
fs::path dir() {
  static const test::ScratchDir d("qalign-bad-ckpt");
  return d.path();
}

std::string write(const std::string& name, const std::string& bytes) {
  const auto p = (dir() / name).string();
  std::ofstream(p, std::ios::binary) << bytes;
  return p;
}

// A safetensors file with this header text and `data` bytes after it.
std::string safetensors_bytes(const std::string& header, size_t data = 16, uint64_t claimed = 0) {
  std::string out(8, '\0');
  const uint64_t n = claimed ? claimed : header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + std::string(data, '\x01');
}

// A torch.save-style zip whose data.pkl is `pickle` plus the given storage records.
std::string torch_zip(const std::string& name, const std::string& pickle,
                      const std::vector<std::pair<std::string, std::string>>& records = {}) {
  const auto p = (dir() / name).string();
  caffe2::serialize::PyTorchStreamWriter w(p);
  if (!pickle.empty()) w.writeRecord("data.pkl", pickle.data(), pickle.size());
  for (const auto& [k, v] : records) w.writeRecord(k, v.data(), v.size());
  w.writeEndOfFile();
  return p;
}

// Protocol-2 pickle of {name: _rebuild_tensor_v2(storage '0' of `numel` floats, offset, (size,), (1,))}.
std::string tensor_pickle(int numel, int offset, int size,
                          const std::string& global = "torch._utils\n_rebuild_tensor_v2") {
  auto i32 = [](int v) {
    std::string s = "J";
    for (int k = 0; k < 4; ++k) s += static_cast<char>((v >> (8 * k)) & 0xff);
    return s;
  };
  auto str = [](const std::string& x) {
    std::string s = "X";
    const uint32_t n = static_cast<uint32_t>(x.size());
    for (int k = 0; k < 4; ++k) s += static_cast<char>((n >> (8 * k)) & 0xff);
    return s + x;
  };
  return std::string("\x80\x02}(") + str("w") + "c" + global + "\n((" + str("storage") + "ctorch\nFloatStorage\n" +
         str("0") + str("cpu") + i32(numel) + "tQ" + i32(offset) + "(" + i32(size) + "t(" + i32(1) + "t\x89" +
         "ccollections\nOrderedDict\n)RtRu.";
}

struct CheckpointCase {
  std::string name;
  std::function<void()> action;
  std::vector<std::string> expected;  // substrings of the message
};

std::string fixture_model() { return test::fixture("qalign-tiny/model"); }

std::vector<CheckpointCase> checkpoint_cases() {
  const std::string ok_entry = R"("a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]})";
  auto st = [](const std::string& file, const std::string& bytes) {
    return [=] { io::SafetensorsFile::open(write(file, bytes)); };
  };
  auto bin = [](std::function<std::string()> make) { return [=] { io::load_torch_bin(make()); }; };
  return {
      {"empty safetensors", st("empty.safetensors", ""), {"empty.safetensors", "truncated"}},
      {"four bytes", st("short.safetensors", "abcd"), {"short.safetensors", "8-byte header length"}},
      {"header past end",
       st("long.safetensors", safetensors_bytes("{" + ok_entry + "}", 16, 1 << 20)),
       {"long.safetensors", "runs past the end of the file"}},
      {"header not json",
       st("notjson.safetensors", safetensors_bytes("{not json")),
       {"notjson.safetensors", "not valid JSON"}},
      {"header is a list", st("list.safetensors", safetensors_bytes("[1,2]")), {"list.safetensors", "JSON object"}},
      {"unknown dtype",
       st("dtype.safetensors", safetensors_bytes(R"({"a":{"dtype":"F33","shape":[4],"data_offsets":[0,16]}})")),
       {"dtype.safetensors", "a", "unknown dtype \"F33\""}},
      {"shape x dtype != bytes",
       st("bytes.safetensors", safetensors_bytes(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})")),
       {"bytes.safetensors", "a", "needs 12 bytes", "span 16"}},
      {"offsets out of range",
       st("range.safetensors", safetensors_bytes(R"({"a":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}})")),
       {"range.safetensors", "a", "run past the data section"}},
      {"overlapping offsets",
       st("overlap.safetensors",
          safetensors_bytes(
              R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})")),
       {"overlap.safetensors", "b", "overlap", "\"a\""}},
      {"duplicate names",
       st("dup.safetensors", safetensors_bytes("{" + ok_entry + "," + ok_entry + "}")),
       {"dup.safetensors", "a", "appears twice"}},
      {"missing data_offsets",
       st("nooff.safetensors", safetensors_bytes(R"({"a":{"dtype":"F32","shape":[4]}})")),
       {"nooff.safetensors", "a", "missing \"data_offsets\""}},
      {"negative dimension",
       st("neg.safetensors", safetensors_bytes(R"({"a":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})")),
       {"neg.safetensors", "a", "non-negative integers"}},
      {"end before begin",
       st("order.safetensors", safetensors_bytes(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})")),
       {"order.safetensors", "a", "end precedes begin"}},
      {"metadata not strings",
       st("meta.safetensors", safetensors_bytes(R"({"__metadata__":{"format":1},)" + ok_entry + "}")),
       {"meta.safetensors", "__metadata__.format", "must be a string"}},
      {"huge dimension",
       st("huge.safetensors",
          safetensors_bytes(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]}})")),
       {"huge.safetensors", "a", "bytes but data_offsets span 16"}},
      {".bin not a zip",
       bin([] { return write("random.bin", std::string(300, 'x')); }),
       {"random.bin", "not a PyTorch zip"}},
      {".bin without data.pkl",
       bin([] {
         return torch_zip("nopkl.bin", "", {{"other", "1234"}});
       }),
       {"nopkl.bin", "data.pkl", "missing"}},
      {".bin forbidden global",
       bin([] {
         return torch_zip("evil.bin", tensor_pickle(4, 0, 4, "os\nsystem"), {{"data/0", std::string(16, '\0')}});
       }),
       {"evil.bin", "data.pkl", "refusing global os.system"}},
      {".bin truncated pickle",
       bin([] {
         return torch_zip("trunc.bin", tensor_pickle(4, 0, 4).substr(0, 40), {{"data/0", std::string(16, '\0')}});
       }),
       {"trunc.bin", "data.pkl", "truncated"}},
      {".bin storage record missing",
       bin([] { return torch_zip("nostore.bin", tensor_pickle(4, 0, 4)); }),
       {"nostore.bin", "data/0", "storage record missing"}},
      {".bin storage size mismatch",
       bin([] {
         return torch_zip("small.bin", tensor_pickle(4, 0, 4), {{"data/0", std::string(8, '\0')}});
       }),
       {"small.bin", "data/0", "holds 8 bytes, expected 16"}},
      {".bin view past storage",
       bin([] {
         return torch_zip("view.bin", tensor_pickle(4, 2, 4), {{"data/0", std::string(16, '\0')}});
       }),
       {"view.bin", "runs past its storage"}},
      {".bin truncated file",
       bin([] {
         const auto good = io::read_file(test::fixture("qalign-tiny/model/pytorch_model.bin"));
         return write("half.bin", good.substr(0, good.size() / 2));
       }),
       {"half.bin"}},
      {"index without weight_map",
       [] { io::load_weights(write("bad.index.json", R"({"metadata":{}})")); },
       {"bad.index.json", "weight_map"}},
      {"index names a missing shard",
       [] { io::load_weights(write("missing.index.json", R"({"weight_map":{"w":"nowhere.safetensors"}})")); },
       {"missing.index.json", "w", "nowhere.safetensors", "is missing"}},
      {"index names a tensor the shard lacks",
       [] {
         fs::copy_file(test::fixture("qalign-tiny/model/model.safetensors"), dir() / "shard.safetensors",
                       fs::copy_options::overwrite_existing);
         io::load_weights(write("lying.index.json", R"({"weight_map":{"ghost.weight":"shard.safetensors"}})"));
       },
       {"shard.safetensors", "ghost.weight", "not in this shard"}},
      {"checkpoint missing a tensor",
       [] {
         auto sd = io::load_weights(fixture_model());
         sd.erase("model.norm.weight");
         auto m = io::load_pretrained(fixture_model());
         io::load_state_dict(*m, sd, "partial.safetensors");
       },
       {"partial.safetensors", "model.norm.weight", "missing from the checkpoint"}},
      {"checkpoint with a wrongly shaped tensor",
       [] {
         auto sd = io::load_weights(fixture_model());
         sd["lm_head.weight"] = torch::zeros({3, 3});
         auto m = io::load_pretrained(fixture_model());
         io::load_state_dict(*m, sd, "shapes.safetensors");
       },
       {"shapes.safetensors", "lm_head.weight", "shape [3, 3] but the model expects [576, 64]"}},
      {"checkpoint with an extra tensor",
       [] {
         auto sd = io::load_weights(fixture_model());
         sd["model.extra.weight"] = torch::zeros({1});
         auto m = io::load_pretrained(fixture_model());
         io::load_state_dict(*m, sd, "extra.safetensors");
       },
       {"extra.safetensors", "model.extra.weight", "not a parameter of this model"}},
      {"folder without weights", [] { io::load_weights(dir().string()); }, {dir().string(), "no weights found"}},
  };
}

}  // namespace

TEST(CheckpointErrors, EachMalformedInputGivesItsMessage) {
  const auto table = checkpoint_cases();
  EXPECT_GE(table.size(), 15u);
  for (const auto& c : table) {
    SCOPED_TRACE(c.name);
    try {
      c.action();
      ADD_FAILURE() << "no error for: " << c.name;
    } catch (const Error& e) {
      const std::string msg = e.what();
      for (const auto& want : c.expected)
        EXPECT_NE(msg.find(want), std::string::npos) << "message: " << msg << "\nmissing: " << want;
    }
  }
}
