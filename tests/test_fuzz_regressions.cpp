// Inputs the fuzz targets (fuzz/README.md) found, or that stand for a finding, each read by the
// reader that failed on it: it must now give a qalign::Error naming the input, never a crash,
// an escaped foreign exception or a leak (the leak only shows under QALIGN_SANITIZE or a fuzz
// build). The files are in tests/fixtures/fuzz/; inputs of a megabyte are built here instead.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>

#include "data/image_decode.h"
#include "qalign/base/error.h"
#include "qalign/io/pickle.h"
#include "qalign/io/torch_bin.h"
#include "qalign/label_files.h"
#include "qalign/model/config.h"
#include "tests/support/fixtures.h"

using namespace qalign;

namespace {

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void unpickle(const std::string& bytes, const std::string& source) {
  io::unpickle_state_dict(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), source,
                          [&](const std::string& key, torch::Dtype, int64_t) -> torch::Tensor {
                            fail(source, key, "this test has no storages");
                          });
}

// Runs `read` and expects a qalign::Error whose message holds every one of `parts`.
void expect_clean_error(const std::function<void()>& read, const std::vector<std::string>& parts) {
  try {
    read();
    ADD_FAILURE() << "accepted; expected an error holding \"" << parts.front() << "\"";
  } catch (const Error& e) {
    for (const auto& part : parts) EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

std::string nested(const std::string& open, const std::string& close, size_t depth) {
  std::string s;
  s.reserve(depth * (open.size() + close.size()));
  for (size_t i = 0; i < depth; ++i) s += open;
  for (size_t i = 0; i < depth; ++i) s += close;
  return s;
}

}  // namespace

// A list appended to itself through the memo: a reference cycle that leaked every Value in it.
TEST(FuzzRegressions, PickleListAppendedToItself) {
  const auto path = test::fixture("fuzz/pickle_list_appended_to_itself.pkl");
  expect_clean_error([&] { unpickle(read_bytes(path), path); }, {path, "not a dict of tensors"});
}

// A million nested one-tuples: freeing them recursively overflowed the stack.
TEST(FuzzRegressions, PickleNestedAMillionDeep) {
  const std::string pickle = ")" + std::string(1000000, '\x85') + ".";
  expect_clean_error([&] { unpickle(pickle, "deep.pkl"); }, {"deep.pkl", "not a dict of tensors"});
}

// A number too large for a double escaped as nlohmann's out_of_range, not a qalign::Error.
TEST(FuzzRegressions, ModelConfigNumberOverflow) {
  const auto path = test::fixture("fuzz/model_config_number_overflow.json");
  expect_clean_error([&] { model::ModelConfig::from_json_file(path); }, {path, "invalid JSON", "number overflow"});
}

// Deep nesting inside a value whose error message prints it: dump() recursed off the stack.
TEST(FuzzRegressions, JsonNestedTooDeep) {
  test::ScratchDir dir("qalign-fuzz-regressions");
  const std::string deep = nested("[", "]", 1000000);
  const auto config = dir.file("config.json");
  std::ofstream(config) << R"({"model_type": "mplug_owl2", "vocab_size": )" << deep << "}";
  expect_clean_error([&] { model::ModelConfig::from_json_file(config); }, {config, "nested more than 64 levels"});

  const auto labels = dir.file("labels.json");
  std::ofstream(labels) << R"([{"conversations": [{"from": "human", "value": "x"}, {"from": "gpt", "value": "y"}],)"
                        << R"( "level_probs": [0, 0, 0, 0, )" << deep << "]}]";
  expect_clean_error([&] { read_training_records(labels); }, {labels, "nested more than 64 levels"});

  // The limit leaves room for any real file: 64 levels still parse.
  const auto shallow = dir.file("shallow.json");
  std::ofstream(shallow) << nested("[", "]", 64);
  EXPECT_NO_THROW(read_json_array(shallow));
}

// miniz accepts the archive, then PyTorchStreamReader's init() rejects it (a leak inside
// LibTorch, suppressed in fuzz/lsan.supp); the rejection itself must be a clean error.
TEST(FuzzRegressions, TorchBinRejectedAfterZipOpens) {
  const auto path = test::fixture("fuzz/torch_bin_rejected_by_init.bin");
  expect_clean_error([&] { io::load_torch_bin(path); }, {path});
}

// A PNG header of 3372236800 x 4126145535: width * height overflowed int64 (UBSan) and, wrapped,
// fell under the pixel limit, so the size check passed.
TEST(FuzzRegressions, ImagePngSidesOverflow) {
  const auto path = test::fixture("fuzz/image_png_sides_overflow.png");
  expect_clean_error([&] { data::decode_image(path); }, {path, "3372236800x4126145535", "-pixel limit"});
}

// Not a fuzzer finding but its neighbour: a storage of 2^62 floats over an empty record. The
// byte count wrapped to 0 and matched; only LibTorch's own view check then stopped it.
TEST(FuzzRegressions, TorchBinStorageNumelOverflow) {
  const auto path = test::fixture("fuzz/torch_bin_numel_overflow.bin");
  expect_clean_error([&] { io::load_torch_bin(path); },
                     {path, "data/0", "storage holds 0 bytes, expected 4611686018427387904 x 4"});
}
