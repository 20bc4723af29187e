// What qalign writes over: every output is new, or qalign's own output of the same job, or
// replaced only when the user passes the override the refusal names. Each case runs the real
// command, as a user would, and checks that what qalign did not write is left byte for byte.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tests/support/bounds.h"
#include "tests/support/fixtures.h"

using namespace qalign;
namespace fs = std::filesystem;

namespace {}  // namespace

TEST(OutputOwnership, KeepListNeverReplacesAnInputOrTheOutput) {
  test::ScratchDir d("qalign-own");
  fs::copy_file(test::source_dir() + "/" + test::kTinyImage, d.file("photo.png"));
  const auto before = test::read_file(d.file("photo.png"));
  auto m = test::run_qalign_bounded("score --model " + test::kTinyModel + " --threshold 0 --overwrite --keep-list " +
                                    d.file("photo.png") + " " + d.file("photo.png"));
  EXPECT_EQ(m.exit_code, 1) << m.output;
  EXPECT_TRUE(test::output_has(m, "photo.png is one of the inputs")) << m.output;
  EXPECT_EQ(test::read_file(d.file("photo.png")), before);

  m = test::run_qalign_bounded("score --model " + test::kTinyModel + " --threshold 0 --out " + d.file("s.jsonl") +
                               " --keep-list " + d.file("s.jsonl") + " " + test::kTinyImage);
  EXPECT_EQ(m.exit_code, 1) << m.output;
  EXPECT_TRUE(test::output_has(m, "--keep-list: is --out itself")) << m.output;
  EXPECT_FALSE(fs::exists(d.file("s.jsonl")));

  // An existing list is replaced only when asked.
  test::write_file(d.file("keep.txt"), "mine\n");
  m = test::run_qalign_bounded("score --model " + test::kTinyModel + " --threshold 0 --keep-list " +
                               d.file("keep.txt") + " " + test::kTinyImage);
  EXPECT_EQ(m.exit_code, 1) << m.output;
  EXPECT_TRUE(test::output_has(m, "keep.txt: exists; --overwrite replaces it")) << m.output;
  EXPECT_EQ(test::read_file(d.file("keep.txt")), "mine\n");
  m = test::run_qalign_bounded("score --model " + test::kTinyModel + " --threshold 0 --overwrite --keep-list " +
                               d.file("keep.txt") + " " + test::kTinyImage);
  EXPECT_EQ(m.exit_code, 0) << m.output;
  EXPECT_EQ(test::read_file(d.file("keep.txt")), test::kTinyImage + "\n");
}

TEST(OutputOwnership, ScoreOutIsRecognisedAsItsOwnOrRefused) {
  test::ScratchDir d("qalign-own");
  test::write_file(d.file("notes.jsonl"), "{\"my\": \"notes\"}\n");
  auto m = test::run_qalign_bounded("score --model " + test::kTinyModel + " --out " + d.file("notes.jsonl") + " " +
                                    test::kTinyImage);
  EXPECT_EQ(m.exit_code, 1) << m.output;
  EXPECT_TRUE(test::output_has(m, "notes.jsonl: exists and was not written by this command")) << m.output;
  EXPECT_TRUE(test::output_has(m, "--overwrite")) << m.output;
  EXPECT_EQ(test::read_file(d.file("notes.jsonl")), "{\"my\": \"notes\"}\n");

  const std::string job = "score --model " + test::kTinyModel + " --out " + d.file("s.jsonl") + " " + test::kTinyImage;
  m = test::run_qalign_bounded(job);
  ASSERT_EQ(m.exit_code, 0) << m.output;
  const auto rows = test::read_file(d.file("s.jsonl"));
  m = test::run_qalign_bounded(job);
  EXPECT_EQ(m.exit_code, 0) << m.output;
  EXPECT_TRUE(test::output_has(m, "s.jsonl is complete: nothing to do")) << m.output;
  // The same file under another job (another task) is not that job's output: refused, naming it.
  m = test::run_qalign_bounded(job + " --task aesthetics");
  EXPECT_EQ(m.exit_code, 1) << m.output;
  EXPECT_TRUE(test::output_has(m, "s.jsonl: holds the rows of another job (task: quality then, aesthetics now)"))
      << m.output;
  EXPECT_EQ(test::read_file(d.file("s.jsonl")), rows);
  // Edited after the run: no longer what qalign wrote.
  test::write_file(d.file("s.jsonl"), rows + "\n");
  m = test::run_qalign_bounded(job);
  EXPECT_EQ(m.exit_code, 1) << m.output;
  m = test::run_qalign_bounded(job + " --overwrite");
  EXPECT_EQ(m.exit_code, 0) << m.output;
  EXPECT_EQ(test::read_file(d.file("s.jsonl")), rows);
}

TEST(OutputOwnership, ASecondJobOnTheSameOutFailsAtOnce) {
  test::ScratchDir d("qalign-own");
  // Another job holds the lock, as a running `qalign score --out` does.
  const int fd = ::open(d.file("s.jsonl.lock").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  ASSERT_EQ(::write(fd, "4242", 4), 4);
  auto m = test::run_qalign_bounded("score --model " + test::kTinyModel + " --out " + d.file("s.jsonl") + " " +
                                    test::kTinyImage);
  EXPECT_EQ(m.exit_code, 1) << m.output;
  EXPECT_TRUE(test::output_has(m, "s.jsonl: another qalign (pid 4242) is writing it now")) << m.output;
  EXPECT_FALSE(fs::exists(d.file("s.jsonl")));
  EXPECT_FALSE(fs::exists(d.file("s.jsonl.parts")));
  ::close(fd);
  fs::remove(d.file("s.jsonl.lock"));
  m = test::run_qalign_bounded("score --model " + test::kTinyModel + " --out " + d.file("s.jsonl") + " " +
                               test::kTinyImage);
  EXPECT_EQ(m.exit_code, 0) << m.output;
  EXPECT_FALSE(fs::exists(d.file("s.jsonl.lock")));  // released with the job
}

TEST(OutputOwnership, InitAndExportDoNotReplaceAModelFolderUnasked) {
  test::ScratchDir d("qalign-own");
  const auto model = d.file("model");
  fs::copy(test::source_dir() + "/" + test::kTinyModel, model, fs::copy_options::recursive);
  const auto weights = test::read_file(model + "/model.safetensors");
  auto m = test::run_qalign_bounded("init --preset tiny --tokenizer " + test::kTinyModel + " --out " + model);
  EXPECT_EQ(m.exit_code, 1) << m.output;
  EXPECT_TRUE(test::output_has(
      m,
      "model already holds files; --overwrite writes there, replacing its old weights once the new ones are written"))
      << m.output;
  EXPECT_EQ(test::read_file(model + "/model.safetensors"), weights);

  // Export into a folder with other weights: refused, and with --overwrite the old weights go, so
  // the folder loads as the exported model (sharded, its index naming every shard).
  const auto out = d.file("exported");
  fs::create_directories(out);
  fs::copy_file(model + "/model.safetensors", out + "/model.safetensors");
  m = test::run_qalign_bounded("export --checkpoint " + test::kTinyModel + " --out " + out +
                               " --dtype float32 --max-shard-size 100KB");
  EXPECT_EQ(m.exit_code, 1) << m.output;
  EXPECT_TRUE(test::output_has(m,
                               "exported already holds files; --overwrite writes there, replacing its old weights once "
                               "the new ones are written"))
      << m.output;
  m = test::run_qalign_bounded("export --checkpoint " + test::kTinyModel + " --out " + out +
                               " --dtype float32 --max-shard-size 100KB --overwrite");
  ASSERT_EQ(m.exit_code, 0) << m.output;
  EXPECT_FALSE(fs::exists(out + "/model.safetensors"));
  EXPECT_TRUE(fs::exists(out + "/model.safetensors.index.json"));

  m = test::run_qalign_bounded("init --preset tiny --tokenizer " + test::kTinyModel + " --out " + model +
                               " --overwrite");
  ASSERT_EQ(m.exit_code, 0) << m.output;
  EXPECT_FALSE(fs::exists(model + "/pytorch_model.bin"));  // the old weights' other copy is gone too
  EXPECT_NE(test::read_file(model + "/model.safetensors"), weights);
}

TEST(OutputOwnership, TrainingNeverWritesOverAnEarlierRunOrItsModel) {
  test::ScratchDir d("qalign-own");
  const auto run = d.file("run");
  const std::string train = "train --config " + test::kTinyRecipe + " max_steps=1 save_steps=1 output_dir=" + run;
  auto m = test::run_qalign_bounded(train);
  ASSERT_EQ(m.exit_code, 0) << m.output;
  const auto first = test::read_file(run + "/checkpoint-1/model.safetensors");

  m = test::run_qalign_bounded(train);
  EXPECT_EQ(m.exit_code, 1) << m.output;
  EXPECT_TRUE(test::output_has(m, "output_dir: " + run + " already holds files")) << m.output;
  EXPECT_TRUE(test::output_has(m, "overwrite_output_dir=true")) << m.output;
  EXPECT_EQ(test::read_file(run + "/checkpoint-1/model.safetensors"), first);

  // Overwriting starts afresh: the earlier run's checkpoints go, so none can be resumed by mistake.
  fs::create_directories(run + "/checkpoint-9");
  m = test::run_qalign_bounded(train + " overwrite_output_dir=true");
  EXPECT_EQ(m.exit_code, 0) << m.output;
  EXPECT_FALSE(fs::exists(run + "/checkpoint-9"));
  EXPECT_TRUE(fs::exists(run + "/checkpoint-1"));

  const auto model = d.file("model");
  fs::copy(test::source_dir() + "/" + test::kTinyModel, model, fs::copy_options::recursive);
  const auto weights = test::read_file(model + "/model.safetensors");
  m = test::run_qalign_bounded("train --config " + test::kTinyRecipe + " max_steps=1 model_name_or_path=" + model +
                               " output_dir=" + model + " overwrite_output_dir=true");
  EXPECT_EQ(m.exit_code, 1) << m.output;
  EXPECT_TRUE(test::output_has(m, "is model_name_or_path: the run would write over the model it starts from"))
      << m.output;
  EXPECT_EQ(test::read_file(model + "/model.safetensors"), weights);
}

TEST(OutputOwnership, AConversationWithoutAnAnswerIsRefusedBeforeTraining) {
  test::ScratchDir d("qalign-own");
  test::write_file(
      d.file("q.json"),
      R"([{"id": "a", "image": "img_wide.png", "conversations": [{"from": "human", "value": "<|image|>Rate."}]}])");
  const auto m = test::run_qalign_bounded("train --config " + test::kTinyRecipe + " data_path=" + d.file("q.json") +
                                          " output_dir=" + d.file("o"));
  EXPECT_EQ(m.exit_code, 1) << m.output;
  EXPECT_TRUE(test::output_has(m, "q.json: [0].conversations: no \"gpt\" turn: the record has no answer to learn"))
      << m.output;
}
