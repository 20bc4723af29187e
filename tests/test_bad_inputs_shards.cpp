// Bad inputs, sharded checkpoints: an index naming a shard that is absent, a shard cut off in the
// middle of a tensor, and a disk that fills (or a file-size limit that is reached) while `qalign
// export` writes. Each run of the real command fails naming the file, in bounded time and memory;
// what was already on disk (the source, an earlier export in --out) is still there, whole, and no
// half-written shard is left where a loader would take it.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "tests/support/bounds.h"
#include "tests/support/fixtures.h"

// A named namespace: the unity build compiles several test files as one.
namespace qalign::bad_inputs_shards {

namespace fs = std::filesystem;

const std::string kShard2 = "model-00002-of-00002.safetensors";

// The tiny model with its weights as the two shards and index of the fixture's sharded copy.
std::string sharded_model(const test::ScratchDir& d) {
  const auto dir = d.file("model");
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(test::fixture("qalign-tiny/model")))
    if (e.path().filename() != "model.safetensors" && e.path().filename() != "pytorch_model.bin")
      fs::copy_file(e.path(), dir + "/" + e.path().filename().string());
  for (const auto& e : fs::directory_iterator(test::fixture("qalign-tiny/model-sharded")))
    fs::copy_file(e.path(), dir + "/" + e.path().filename().string(), fs::copy_options::overwrite_existing);
  return dir;
}

std::string score(const std::string& model) { return "score --model " + model + " " + test::kTinyImage; }
std::string export_to(const std::string& model, const std::string& out) {
  return "export --checkpoint " + model + " --out " + out;
}
std::string train_from(const std::string& model, const std::string& run) {
  return "train --config " + test::kTinyRecipe + " max_steps=1 model_name_or_path=" + model + " output_dir=" + run;
}

TEST(BadInputsShards, ShardMissingFromTheIndexIsNamed) {
  test::ScratchDir d("qalign-shards");
  const auto model = sharded_model(d);
  fs::remove(model + "/" + kShard2);
  const auto index = model + "/model.safetensors.index.json";
  const std::string problem = "its shard " + model + "/" + kShard2 + " is missing";
  test::expect_refused(test::run_qalign_bounded(score(model)), index, problem);
  test::expect_refused(test::run_qalign_bounded(export_to(model, d.file("out"))), index, problem);
  EXPECT_FALSE(fs::exists(d.file("out/model-00001-of-00002.safetensors")));
  test::expect_refused(test::run_qalign_bounded(train_from(model, d.file("run"))), index, problem);
}

TEST(BadInputsShards, ShardTruncatedMidTensorIsNamed) {
  test::ScratchDir d("qalign-shards");
  const auto model = sharded_model(d);
  const auto shard = model + "/" + kShard2;
  // Cut in the middle of the shard's largest tensor, its header left whole.
  auto bytes = test::read_file(shard);
  uint64_t header = 0;
  for (int i = 7; i >= 0; --i) header = (header << 8) | static_cast<uint8_t>(bytes[i]);
  uint64_t begin = 0, end = 0;
  const auto entries = nlohmann::json::parse(bytes.substr(8, header));
  for (auto it = entries.begin(); it != entries.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const auto b = it.value()["data_offsets"][0].get<uint64_t>(), e = it.value()["data_offsets"][1].get<uint64_t>();
    if (e - b > end - begin) begin = b, end = e;
  }
  ASSERT_GT(end - begin, 2u);
  bytes.resize(8 + header + (begin + end) / 2);
  test::write_file(shard, bytes);
  test::expect_refused(test::run_qalign_bounded(score(model)), shard, "the file is truncated");
  test::expect_refused(test::run_qalign_bounded(export_to(model, d.file("out"))), shard, "the file is truncated");
}

// --out holding an earlier export, and the source, byte for byte: what a failed export must keep.
struct Kept {
  std::map<std::string, std::string> files;
  explicit Kept(const std::string& dir) {
    for (const auto& e : fs::directory_iterator(dir)) files[e.path().filename().string()] = test::read_file(e.path());
  }
};

void expect_kept(const Kept& before, const std::string& dir) {
  const Kept after(dir);
  std::vector<std::string> names_before, names_after;
  for (const auto& [n, bytes] : before.files) names_before.push_back(n);
  for (const auto& [n, bytes] : after.files) names_after.push_back(n);
  EXPECT_EQ(names_after, names_before) << dir;  // no shard, temporary or staging folder left
  for (const auto& [n, bytes] : before.files)
    if (after.files.count(n)) EXPECT_TRUE(after.files.at(n) == bytes) << dir << "/" << n << " changed";
}

// What an earlier `qalign export` left in a folder: the tiny model in bf16, one 0.5 MB file.
std::string earlier_export(const std::string& dir) {
  const auto m = test::run_qalign_bounded("export --checkpoint " + test::kTinyModel + " --out " + dir);
  EXPECT_EQ(m.exit_code, 0) << m.output;
  return dir;
}

// The disk fills during the export: a 900 KB tmpfs (in a mount namespace of its own, so no root
// is needed) holds an earlier 0.5 MB export in --out; the new one, 1 MB of float32 in 200 KB
// shards, runs out of space after a few. (Removing the old weights first, as export did, lost
// them and still ran out.) The folder is copied out before the namespace and its tmpfs end.
TEST(BadInputsShards, DiskFullDuringExportKeepsTheEarlierExportAndTheSource) {
  test::ScratchDir d("qalign-shards");
  std::string out;
  if (test::run_command("unshare --user --map-root-user --mount true", &out) != 0)
    GTEST_SKIP() << "no user or mount namespaces here (unshare: " << out << ")";
  const auto source = sharded_model(d);
  const Kept source_before(source);
  const auto seed = earlier_export(d.file("earlier"));
  const Kept earlier(seed);
  const auto disk = d.file("disk"), after = d.file("after");
  fs::create_directories(disk);
  const std::string script = "mount -t tmpfs -o size=900k none " + disk + " && cp -r " + seed + " " + disk +
                             "/out && '" + test::qalign_binary() + "' " + export_to(source, disk + "/out") +
                             " --dtype float32 --max-shard-size 200KB --overwrite; rc=\\$?; cp -r " + disk + "/out " +
                             after + "; exit \\$rc";
  const auto m = test::run_shell_measured("unshare --user --map-root-user --mount sh -c \"" + script + "\"");
  test::expect_bounded(m, "export onto a full disk");
  EXPECT_EQ(m.exit_code, 1) << m.output;
  EXPECT_TRUE(test::output_has(m, ".safetensors: write failed: No space left on device")) << m.output;
  EXPECT_TRUE(test::output_has(m, disk + "/out/")) << m.output;  // the file it was writing, by its path
  EXPECT_FALSE(test::output_has(m, "unexpected error")) << m.output;
  expect_kept(earlier, after);
  expect_kept(source_before, source);
}

// A file-size limit (ulimit -f; a file system's largest file) reached by the first shard: an
// error naming it ("File too large", not a process killed by SIGXFSZ), the earlier export kept.
TEST(BadInputsShards, FileSizeLimitDuringExportKeepsTheEarlierExport) {
  test::ScratchDir d("qalign-shards");
  const auto source = sharded_model(d);
  const auto dir = earlier_export(d.file("out"));
  const Kept earlier(dir);
  // 200 blocks: 100 KB (512-byte blocks, POSIX sh) or 200 KB (bash), below each 300 KB shard.
  const auto m =
      test::run_shell_measured("ulimit -f 200 && exec '" + test::qalign_binary() + "' " + export_to(source, dir) +
                               " --dtype float32 --max-shard-size 300KB --overwrite");
  test::expect_bounded(m, "export over a file-size limit");
  EXPECT_EQ(m.exit_code, 1) << m.output;
  EXPECT_TRUE(test::output_has(m, dir + "/")) << m.output;
  EXPECT_TRUE(test::output_has(m, ".safetensors: write failed: File too large")) << m.output;
  expect_kept(earlier, dir);
  // Lifted, the same export replaces the earlier one and scores.
  auto ok = test::run_qalign_bounded(export_to(source, dir) + " --dtype float32 --max-shard-size 300KB --overwrite");
  ASSERT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_FALSE(fs::exists(dir + "/model.safetensors"));
  EXPECT_FALSE(fs::exists(dir + "/.qalign-partial"));
  ok = test::run_qalign_bounded(score(dir));
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
}

}  // namespace qalign::bad_inputs_shards
