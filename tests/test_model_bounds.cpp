// Bounded time and memory for hostile or careless inputs (issue 20): a config.json whose sizes
// contradict its weights, files that are FIFOs, thread counts past any use, and `qalign launch`
// arguments and stragglers. Each case runs the real command and must end within 20 s, under
// 1.5 GB, with a message naming the file (or flag) and the problem.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "qalign/base/atomic_file.h"
#include "qalign/base/error.h"
#include "qalign/config/limits.h"
#include "qalign/config/train_config.h"
#include "qalign/io/checkpoint.h"
#include "tests/support/fixtures.h"

using namespace qalign;
namespace fs = std::filesystem;

namespace {

// A copy of model folder `from` (tests/fixtures/qalign-tiny/<from>) in `d` as "model", its
// config.json with `key: old` replaced by `key: value`.
std::string model_with(const test::ScratchDir& d, const std::string& key, const std::string& old,
                       const std::string& value, const std::string& from = "model") {
  const auto dir = d.file("model");
  fs::copy(test::fixture("qalign-tiny/" + from), dir, fs::copy_options::recursive);
  auto text = test::read_file(dir + "/config.json");
  const std::string before = "\"" + key + "\": " + old;
  const auto at = text.find(before);
  EXPECT_NE(at, std::string::npos) << "config.json has no " << before;
  if (at != std::string::npos) text.replace(at, before.size(), "\"" + key + "\": " + value);
  test::write_file(dir + "/config.json", text);
  return dir;
}

void make_fifo(const std::string& path) {
  fs::remove(path);
  ASSERT_EQ(::mkfifo(path.c_str(), 0644), 0) << path;
}

// Ends within 20 s (killed at 60), under 1.5 GB, with `rc` and every one of `expected`.
void expect_bounded(const std::string& args, int rc, const std::vector<std::string>& expected) {
  SCOPED_TRACE(args);
  const auto m = test::run_qalign_measured(args, 60);
  EXPECT_FALSE(m.timed_out) << m.output;
  EXPECT_LT(m.seconds, 20.0) << m.output;
  EXPECT_LT(m.peak_mb, 1500.0) << m.output;
  EXPECT_EQ(m.exit_code, rc) << m.output;
  for (const auto& e : expected) EXPECT_NE(m.output.find(e), std::string::npos) << "wanted: " << e << "\n" << m.output;
  EXPECT_EQ(m.output.find("frame #"), std::string::npos) << "a C++ backtrace:\n" << m.output;
}

std::string score_with(const std::string& model) { return "score --model " + model + " " + test::kTinyImage; }

}  // namespace

// --- config.json against the weights, before any allocation ---------------------------------

TEST(ConfigAgainstWeights, HugeHiddenSizeNamesTheTensorOfEachWeightsFormat) {
  test::ScratchDir d("qalign-bounds");
  const auto dir = model_with(d, "hidden_size", "64", "1048576");
  expect_bounded(score_with(dir), 1,
                 {"model/config.json: hidden_size: 1048576, but model.safetensors has model.embed_tokens.weight of "
                  "shape [576, 64]"});
  // The .bin's shapes come from its pickle, not its data.
  fs::remove(dir + "/model.safetensors");
  expect_bounded(score_with(dir), 1,
                 {"model/config.json: hidden_size: 1048576, but pytorch_model.bin has model.embed_tokens.weight of "
                  "shape [576, 64]"});
}

TEST(ConfigAgainstWeights, ShardedCheckpointIsCheckedThroughItsIndex) {
  test::ScratchDir d("qalign-bounds");
  const auto dir = model_with(d, "vocab_size", "576", "50000000", "model-sharded");
  expect_bounded(score_with(dir) + " --tokenizer " + test::kTinyModel, 1,
                 {"model/config.json: vocab_size: 50000000, but model.safetensors.index.json has "
                  "model.embed_tokens.weight of shape [576, 64]"});
}

TEST(ConfigAgainstWeights, LayerCountsAreBoundedAndChecked) {
  test::ScratchDir d("qalign-bounds");
  expect_bounded(score_with(model_with(d, "num_hidden_layers", "2,\n  \"num_key_value_heads\"",
                                       "1000000000000,\n  \"num_key_value_heads\"")),
                 1, {"model/config.json: num_hidden_layers: expected at most 1024, got 1000000000000"});
  fs::remove_all(d.file("model"));
  expect_bounded(score_with(model_with(d, "num_hidden_layers", "2,\n  \"num_key_value_heads\"",
                                       "1e12,\n  \"num_key_value_heads\"")),
                 1,
                 {"model/config.json: num_hidden_layers: expected a positive integer, got 1000000000000.0 (a float)"});
  fs::remove_all(d.file("model"));
  expect_bounded(score_with(model_with(d, "num_hidden_layers", "2,\n  \"num_key_value_heads\"",
                                       "1.5,\n  \"num_key_value_heads\"")),
                 1, {"model/config.json: num_hidden_layers: expected a positive integer, got 1.5 (a float)"});
  fs::remove_all(d.file("model"));
  expect_bounded(score_with(model_with(d, "num_hidden_layers", "2,\n  \"num_key_value_heads\"",
                                       "900,\n  \"num_key_value_heads\"")),
                 1,
                 {"model/config.json: num_hidden_layers: 900, but model.safetensors has 2 (model.layers.0 to "
                  "model.layers.1)"});
}

TEST(ConfigAgainstWeights, VisionSizesAreCheckedToo) {
  test::ScratchDir d("qalign-bounds");
  expect_bounded(score_with(model_with(d, "num_channels", "3", "100000")), 1,
                 {"model/config.json: visual_config.visual_model.num_channels: 100000, but model.safetensors has "
                  "model.vision_model.embeddings.patch_embed.weight of shape [32, 3, 14, 14]"});
}

TEST(ConfigAgainstWeights, InitWithoutWeightsStillBuildsAModel) {
  test::ScratchDir d("qalign-bounds");
  expect_bounded("init --config " + test::kTinyModel + "/config.json --tokenizer " + test::kTinyModel + " --out " +
                     d.file("fresh"),
                 0, {});
  EXPECT_TRUE(fs::exists(d.file("fresh/model.safetensors")) ||
              fs::exists(d.file("fresh/model.safetensors.index.json")));
  // And what it wrote loads: its config and weights agree.
  expect_bounded(score_with(d.file("fresh")), 0, {});
}

// --- FIFOs are refused before they are opened -----------------------------------------------

// Each file of a model folder a FIFO in turn (the weights in both formats: the .bin is read once
// the safetensors are gone).
TEST(NonRegularFiles, FifoInAModelFolderIsRefused) {
  for (const std::string file : {"model.safetensors", "pytorch_model.bin", "config.json", "tokenizer.model"}) {
    SCOPED_TRACE(file);
    test::ScratchDir d("qalign-bounds");
    const auto dir = d.file("model");
    fs::copy(test::fixture("qalign-tiny/model"), dir, fs::copy_options::recursive);
    if (file == "pytorch_model.bin") fs::remove(dir + "/model.safetensors");
    make_fifo(dir + "/" + file);
    expect_bounded(score_with(dir), 1,
                   {"model/" + file + ": cannot open file: it is a FIFO (named pipe), not a regular file"});
  }
}

TEST(NonRegularFiles, FifoTrainingYamlAndDataAreRefused) {
  test::ScratchDir d("qalign-bounds");
  make_fifo(d.file("recipe.yaml"));
  expect_bounded("train --config " + d.file("recipe.yaml"), 1,
                 {"recipe.yaml: cannot open file: it is a FIFO (named pipe), not a regular file"});
  make_fifo(d.file("data.json"));
  expect_bounded(
      "train --config " + test::kTinyRecipe + " data_path=" + d.file("data.json") + " output_dir=" + d.file("out"), 1,
      {"data.json: cannot open file: it is a FIFO (named pipe), not a regular file"});
}

TEST(NonRegularFiles, SharedCheckNamesWhatThePathIs) {
  test::ScratchDir d("qalign-bounds");
  const auto message = [](const std::string& path) {
    try {
      io::read_file(path);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message(d.path()), d.path() + ": cannot open file: it is a folder, not a regular file");
  EXPECT_EQ(message(d.file("none")), d.file("none") + ": cannot open file: No such file or directory");
  test::write_file(d.file("ok.txt"), "fine");
  EXPECT_EQ(io::read_file(d.file("ok.txt")), "fine");
}

// --- thread counts ----------------------------------------------------------------------------

TEST(WorkerLimit, TrainingYamlPastTheLimitNamesTheKeyAndTheLimit) {
  test::ScratchDir d("qalign-bounds");
  test::write_file(d.file("recipe.yaml"), test::read_file(test::fixture("train/tiny_recipe.yaml")) + "\n");
  auto text = test::read_file(d.file("recipe.yaml"));
  text.replace(text.find("dataloader_num_workers: 2"), 25, "dataloader_num_workers: 40000");
  test::write_file(d.file("recipe.yaml"), text);
  expect_bounded("train --config " + d.file("recipe.yaml") + " output_dir=" + d.file("out"), 1,
                 {"recipe.yaml: dataloader_num_workers: expected 0 to 256 worker threads, got 40000"});
  EXPECT_FALSE(fs::exists(d.file("out")));
}

TEST(WorkerLimit, ScoreWorkersPastTheLimitNameTheFlag) {
  expect_bounded("score --model " + test::fixture("qalign-tiny/model") + " --workers 40000 " +
                     test::fixture("qalign-tiny/inputs/img_wide.png"),
                 1, {"--workers: expected 0 to 256 worker threads, got 40000"});
}

TEST(WorkerLimit, TheLimitItselfIsAccepted) {
  const auto source = test::fixture("train/tiny_recipe.yaml");
  const auto at_limit = "dataloader_num_workers=" + std::to_string(config::kMaxWorkerThreads);
  EXPECT_EQ(config::load_train_config(source, {at_limit}).dataloader_num_workers, config::kMaxWorkerThreads);
  const auto past = "dataloader_num_workers=" + std::to_string(config::kMaxWorkerThreads + 1);
  EXPECT_THROW(config::load_train_config(source, {past}), Error);
  EXPECT_NO_THROW(config::check_worker_count(0, "--workers", ""));
  EXPECT_THROW(config::check_worker_count(-1, "--workers", ""), Error);
}

// --- qalign launch ----------------------------------------------------------------------------

TEST(Launch, ZeroWorkersSaysWhatIsAllowed) {
  expect_bounded("launch --nproc-per-node 0 -- true", 105, {"--nproc-per-node: must be at least 1, got 0"});
  expect_bounded("launch --nproc-per-node 1 --grace -1 -- true", 105, {"--grace: must be at least 0, got -1"});
}

TEST(Launch, ShellWorkerStillRunningAfterAnotherFailedIsStopped) {
  // The shell's `sleep` is its child: stopping the shell alone left it holding the pipes. Both
  // heed SIGTERM, so the launcher ends well before the grace, even when rank 0 fails before
  // rank 1 has started its shell.
  const auto m = test::run_qalign_measured(
      "launch --nproc-per-node 2 --grace 10 -- sh -c 'if [ $RANK = 0 ]; then exit 3; else sleep 100; fi'", 60);
  EXPECT_EQ(m.exit_code, 3) << m.output;
  EXPECT_LT(m.seconds, 5.0) << m.output;
  EXPECT_LT(m.peak_mb, 1500.0);
  EXPECT_NE(m.output.find("rank 0 failed: it exited with code 3"), std::string::npos) << m.output;
}

TEST(Launch, GraceThenSigkillForAWorkerIgnoringSigterm) {
  const auto m = test::run_qalign_measured(
      "launch --nproc-per-node 2 --grace 2 -- sh -c 'if [ $RANK = 0 ]; then sleep 0.5; exit 3; else trap \"\" TERM; "
      "echo ready; sleep 100; fi'",
      60);
  EXPECT_EQ(m.exit_code, 3) << m.output;
  EXPECT_GE(m.seconds, 2.0) << "SIGKILL came before the grace:\n" << m.output;
  EXPECT_LT(m.seconds, 6.0) << m.output;
  EXPECT_NE(m.output.find("[rank 1] ready"), std::string::npos) << m.output;
  EXPECT_NE(m.output.find("rank 0 failed: it exited with code 3"), std::string::npos) << m.output;
}
