// Bad inputs, round three: what a run owns and what it reports. A run never removes or writes
// over the checkpoint it starts from, every --out follows the ownership rule, a tampered
// trainer_state.json or `latest` is refused by name, one `qalign train` writes an output_dir at a
// time, and a run that trained nothing says so with a failing exit code. Each case runs the real
// command and checks its bounds (time, memory, no crash) and that the message names the file or key.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "qalign/io/safetensors.h"
#include "tests/support/bounds.h"
#include "tests/support/fixtures.h"

// A named namespace: the unity build compiles several test files as one, so helpers in an
// anonymous namespace could collide with another file's.
namespace qalign::bad_inputs_own {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string train_args(const std::string& run, const std::string& more) {
  return "train --config " + test::kTinyRecipe + " output_dir=" + run + " " + more;
}

// A finished run of `steps` steps with a checkpoint after each, in d/run.
std::string trained_run(const test::ScratchDir& d, int steps) {
  const auto run = d.file("run");
  const auto m = test::run_qalign_bounded(train_args(run, "max_steps=" + std::to_string(steps) + " save_steps=1"));
  EXPECT_EQ(m.exit_code, 0) << m.output;
  return run;
}

// `file` (JSON) with `key` set to the JSON text `value`.
void set_json(const std::string& file, const std::string& key, const std::string& value) {
  auto j = nlohmann::json::parse(test::read_file(file));
  j[key] = nlohmann::json::parse(value);
  test::write_file(file, j.dump(2));
}

TEST(BadInputsOwn, OverwriteNeverRemovesTheSourceCheckpoint) {
  test::ScratchDir d("qalign-own3");
  const auto run = trained_run(d, 2);
  const auto weights = test::read_file(run + "/checkpoint-1/model.safetensors");
  const auto m = test::run_qalign_bounded(
      train_args(run, "max_steps=2 overwrite_output_dir=true model_name_or_path=" + run + "/checkpoint-1"));
  EXPECT_EQ(m.exit_code, 1) << m.output;
  EXPECT_TRUE(test::output_has(m, "overwrite_output_dir: model_name_or_path " + run + "/checkpoint-1 is " + run +
                                      "/checkpoint-1 in output_dir " + run))
      << m.output;
  EXPECT_EQ(test::read_file(run + "/checkpoint-1/model.safetensors"), weights);
  EXPECT_TRUE(fs::exists(run + "/checkpoint-2"));
}

TEST(BadInputsOwn, RotationKeepsTheSourceCheckpointAndEveryCheckpointScores) {
  test::ScratchDir d("qalign-own3");
  const auto run = trained_run(d, 2);
  const auto source = run + "/checkpoint-1";
  const auto weights = test::read_file(source + "/model.safetensors");
  auto m =
      test::run_qalign_bounded(train_args(run,
                                          "max_steps=4 save_steps=1 save_total_limit=1 resume_from_checkpoint=latest "
                                          "model_name_or_path=" +
                                              source));
  ASSERT_EQ(m.exit_code, 0) << m.output;
  EXPECT_TRUE(test::output_has(m, "is in output_dir: this run keeps it")) << m.output;
  EXPECT_EQ(test::read_file(source + "/model.safetensors"), weights);
  EXPECT_FALSE(fs::exists(run + "/checkpoint-3"));
  ASSERT_TRUE(fs::exists(run + "/checkpoint-4"));
  EXPECT_EQ(test::read_file(run + "/checkpoint-4/tokenizer.model"),
            test::read_file(test::source_dir() + "/" + test::kTinyModel + "/tokenizer.model"));
  m = test::run_qalign_bounded("score --model " + run + "/checkpoint-4 " + test::kTinyImage);
  EXPECT_EQ(m.exit_code, 0) << m.output;

  // A source that a later step would write anew is refused before anything is written.
  m = test::run_qalign_bounded(train_args(run, "max_steps=6 save_steps=1 resume_from_checkpoint=" + source +
                                                   " model_name_or_path=" + run + "/checkpoint-4"));
  EXPECT_EQ(m.exit_code, 1) << m.output;
  EXPECT_TRUE(test::output_has(m, "model_name_or_path: " + run + "/checkpoint-4 is " + run +
                                      "/checkpoint-4, which this run writes anew at step 4"))
      << m.output;
  EXPECT_TRUE(fs::exists(run + "/checkpoint-4/model.safetensors"));
}

TEST(BadInputsOwn, MakeSftOutNeverReplacesAFileItDidNotWrite) {
  test::ScratchDir d("qalign-own3");
  const auto input = d.file("scores.json");
  test::write_file(input, R"([{"image": "a.png", "gt_score": 2.0}, {"image": "b.png", "gt_score": 4.0}])");
  const std::string make = "data make-sft --range 1 5 --input " + input + " --out ";
  fs::copy_file(test::source_dir() + "/" + test::kTinyImage, d.file("photo.png"));
  test::write_file(d.file("config.json"), "{\"mine\": 1}\n");
  for (const std::string name : {"photo.png", "config.json"}) {
    const auto before = test::read_file(d.file(name));
    const auto m = test::run_qalign_bounded(make + d.file(name));
    EXPECT_EQ(m.exit_code, 1) << m.output;
    EXPECT_TRUE(test::output_has(m, d.file(name) + ": exists; --overwrite replaces it")) << m.output;
    EXPECT_EQ(test::read_file(d.file(name)), before);
  }
  const auto scores = test::read_file(input);
  auto m = test::run_qalign_bounded(make + input + " --overwrite");
  EXPECT_EQ(m.exit_code, 1) << m.output;
  EXPECT_TRUE(test::output_has(m, "--out: " + input + " is --input: write the output to a file of its own"))
      << m.output;
  EXPECT_EQ(test::read_file(input), scores);

  m = test::run_qalign_bounded(make + d.file("sft.json"));
  ASSERT_EQ(m.exit_code, 0) << m.output;
  m = test::run_qalign_bounded(make + d.file("sft.json") + " --overwrite");
  EXPECT_EQ(m.exit_code, 0) << m.output;
}

TEST(BadInputsOwn, DemoPlotOutNeverReplacesAFileItDidNotWrite) {
  test::ScratchDir d("qalign-own3");
  test::write_file(d.file("metrics.jsonl"), "{\"step\": 1, \"loss\": 2.0}\n{\"step\": 2, \"loss\": 1.5}\n");
  const std::string plot = "demo plot --metrics " + d.file("metrics.jsonl") + " --out ";
  auto m = test::run_qalign_bounded(plot + d.file("x.json"));
  EXPECT_EQ(m.exit_code, 1) << m.output;
  EXPECT_TRUE(test::output_has(m, "--out: " + d.file("x.json") + ": expected a .png file name")) << m.output;
  EXPECT_EQ(m.output.find("OpenCV"), std::string::npos) << m.output;

  fs::copy_file(test::source_dir() + "/" + test::kTinyImage, d.file("photo.png"));
  const auto photo = test::read_file(d.file("photo.png"));
  m = test::run_qalign_bounded(plot + d.file("photo.png"));
  EXPECT_EQ(m.exit_code, 1) << m.output;
  EXPECT_TRUE(test::output_has(m, d.file("photo.png") + ": exists; --overwrite replaces it")) << m.output;
  EXPECT_EQ(test::read_file(d.file("photo.png")), photo);

  m = test::run_qalign_bounded(plot + d.file("plot.png"));
  ASSERT_EQ(m.exit_code, 0) << m.output;
  m = test::run_qalign_bounded(plot + d.file("plot.png") + " --overwrite");
  EXPECT_EQ(m.exit_code, 0) << m.output;
}

TEST(BadInputsOwn, OverflowingEpochCountIsRefused) {
  test::ScratchDir d("qalign-own3");
  const auto m = test::run_qalign_bounded(train_args(d.file("run"), "max_steps=-1 num_train_epochs=1e19"));
  EXPECT_EQ(m.exit_code, 1) << m.output;
  EXPECT_TRUE(test::output_has(m,
                               "training config: num_train_epochs: gives 3e+19 optimizer steps (3 per epoch); "
                               "expected 1 to 1e12"))
      << m.output;
  EXPECT_FALSE(test::output_has(m, "training done")) << m.output;
  EXPECT_FALSE(fs::exists(d.file("run/checkpoint-1")));
}

TEST(BadInputsOwn, ARunThatTrainedNothingFails) {
  test::ScratchDir d("qalign-own3");
  // Every answer cut off by model_max_length: no supervised token, every loss non-finite.
  nlohmann::json records = nlohmann::json::array();
  std::string question;
  for (int w = 0; w < 2100; ++w) question += "rate ";
  for (int i = 0; i < 2; ++i)
    records.push_back({{"id", "cut" + std::to_string(i)},
                       {"conversations",
                        {{{"from", "human"}, {"value", question}},
                         {{"from", "gpt"}, {"value", "The quality of the image is good."}}}}});
  test::write_file(d.file("cut.json"), records.dump());
  const auto m = test::run_qalign_bounded(
      train_args(d.file("run"), "max_steps=2 gradient_accumulation_steps=1 data_path=" + d.file("cut.json")));
  EXPECT_NE(m.exit_code, 0) << m.output;
  EXPECT_TRUE(test::output_has(m, "trained nothing: every one of the run's 2 steps had a non-finite loss")) << m.output;
  EXPECT_FALSE(test::output_has(m, "training done")) << m.output;
}

TEST(BadInputsOwn, TamperedTrainerStateIsRefusedByName) {
  test::ScratchDir d("qalign-own3");
  const auto run = trained_run(d, 2);
  const auto state = run + "/checkpoint-2/trainer_state.json";
  const auto original = test::read_file(state);
  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      {"global_step", "-5", "global_step: -5 is outside 0 to 4"},
      {"global_step", "1000000000000", "global_step: 1000000000000 is outside 0 to 4"},
      {"position", "1000000000000000", "position: 1000000000000000 is outside 0 to 5"},
      {"epoch", "-1", "epoch: -1 is outside 0 to 2"},
  };
  for (const auto& [key, value, expected] : cases) {
    test::write_file(state, original);
    set_json(state, key, value);
    const auto m = test::run_qalign_bounded(train_args(run, "max_steps=4 resume_from_checkpoint=latest"));
    EXPECT_EQ(m.exit_code, 1) << key << " " << m.output;
    EXPECT_TRUE(test::output_has(m, state + ": " + expected)) << m.output;
    EXPECT_FALSE(fs::exists(run + "/checkpoint-3")) << key;
  }
  test::write_file(state, original);

  // A CPU generator state cut short.
  const auto rng = run + "/checkpoint-2/rng_state.safetensors";
  io::save_safetensors(rng, {{"rng.cpu", torch::zeros({100}, torch::kUInt8)}});
  const auto m = test::run_qalign_bounded(train_args(run, "max_steps=4 resume_from_checkpoint=latest"));
  EXPECT_EQ(m.exit_code, 1) << m.output;
  EXPECT_TRUE(test::output_has(m, rng + ": rng.cpu: holds 100 values; expected the CPU generator's state")) << m.output;
}

TEST(BadInputsOwn, LatestResolvesInsideOutputDirOnly) {
  test::ScratchDir d("qalign-own3");
  const auto run = trained_run(d, 1);
  fs::create_directories(d.file("other"));
  fs::copy(run + "/checkpoint-1", d.file("other/checkpoint-2"), fs::copy_options::recursive);
  for (const std::string& named : std::vector<std::string>{"../other/checkpoint-2", d.file("other/checkpoint-2")}) {
    test::write_file(run + "/latest", named + "\n");
    const auto m = test::run_qalign_bounded(train_args(run, "max_steps=3 resume_from_checkpoint=latest"));
    EXPECT_EQ(m.exit_code, 1) << m.output;
    EXPECT_TRUE(test::output_has(m, run + "/latest: names '" + named + "', not a checkpoint-<step> folder of " + run))
        << m.output;
    EXPECT_FALSE(fs::exists(run + "/checkpoint-3"));
  }
}

TEST(BadInputsOwn, ASecondTrainOnOneOutputDirRefusesAtOnce) {
  test::ScratchDir d("qalign-own3");
  const auto run = d.file("run");
  fs::create_directories(run);
  // Another job holds the run's lock, as a running `qalign train` does.
  const int fd = ::open((run + "/.qalign-train.lock").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  ASSERT_EQ(::write(fd, "4242 on node7", 13), 13);
  auto m = test::run_qalign_bounded(train_args(run, "max_steps=1 resume_from_checkpoint=latest"));
  EXPECT_EQ(m.exit_code, 1) << m.output;
  EXPECT_TRUE(test::output_has(m, run + ": another qalign (pid 4242 on node7) is writing it now")) << m.output;
  EXPECT_LT(m.seconds, 5) << m.output;
  ::close(fd);
  fs::remove(run + "/.qalign-train.lock");

  // A real first run: the second names its pid; the lock goes with the first.
  std::string pid_text;
  ASSERT_EQ(test::run_command("cd '" + test::source_dir() + "' && '" + test::qalign_binary() + "' " +
                                  train_args(run, "max_steps=100000 save_steps=100000") + " > " + d.file("first.log") +
                                  " 2>&1 & echo $!",
                              &pid_text),
            0);
  const pid_t first = std::stoi(pid_text);
  const auto start = std::chrono::steady_clock::now();
  while (test::read_file(run + "/.qalign-train.lock").empty() && std::chrono::steady_clock::now() - start < 15s)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  m = test::run_qalign_bounded(train_args(run, "max_steps=1 resume_from_checkpoint=latest"));
  EXPECT_EQ(m.exit_code, 1) << m.output;
  EXPECT_TRUE(test::output_has(m, "another qalign (pid " + std::to_string(first) + " on ")) << m.output;
  ::kill(first, SIGTERM);
  while (::kill(first, 0) == 0 && std::chrono::steady_clock::now() - start < 40s)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(fs::exists(run + "/.qalign-train.lock")) << test::read_file(d.file("first.log"));
}

TEST(BadInputsOwn, TrainerKeysOutOfRangeAreNamed) {
  test::ScratchDir d("qalign-own3");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"learning_rate=1e300", "command line: learning_rate: expected a value in (0, 1], got 1e300"},
      {"gradient_accumulation_steps=1000000000",
       "command line: gradient_accumulation_steps: expected 1 to 4096 micro-batches per step, got 1000000000"},
      {"lora_enable=true lora_r=1000000000", "command line: lora_r: expected 1 to 4096, got 1000000000"},
      {"model_max_length=1",
       "training config: model_max_length: 1 tokens is shorter than the conversation template with a picture"},
  };
  for (const auto& [args, expected] : cases) {
    const auto m = test::run_qalign_bounded(train_args(d.file("run"), "max_steps=1 " + args));
    EXPECT_EQ(m.exit_code, 1) << args << "\n" << m.output;
    EXPECT_TRUE(test::output_has(m, expected)) << args << "\n" << m.output;
  }
}

}  // namespace qalign::bad_inputs_own
