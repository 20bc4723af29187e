#pragma once
// Paths to the fixtures the tests read: tests/fixtures in the repository (always there) and
// ../shared (large label files; tests that need it skip when it is absent).
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "qalign/base/error.h"

namespace qalign::test {

std::string source_dir();
// tests/fixtures/<rel>
std::string fixture(const std::string& rel);
// ../shared/<rel>, or "" when the shared folder is absent.
std::string shared(const std::string& rel);
// The tiny fixture model, its inputs, one of its pictures and the tiny training recipe, as paths
// from the source folder (where run_qalign_measured and run_train run qalign).
inline const std::string kTinyModel = "tests/fixtures/qalign-tiny/model";
inline const std::string kTinyInputs = "tests/fixtures/qalign-tiny/inputs";
inline const std::string kTinyImage = "tests/fixtures/qalign-tiny/inputs/img_wide.png";
inline const std::string kTinyRecipe = "tests/fixtures/train/tiny_recipe.yaml";

// The built qalign executable.
std::string qalign_binary();
// A file's bytes, or "" when it cannot be read; and a file written with exactly `bytes`.
std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& bytes);

// The JSON value of each line of a JSON Lines file.
std::vector<nlohmann::json> read_jsonl(const std::string& path);

// A port no one listens on now: the kernel's pick for a socket bound to port 0 (tests run in
// parallel, so fixed ports would clash).
int free_port();

// Runs a shell command, returns its exit code and combined output.
int run_command(const std::string& cmd, std::string* output);
// Runs `qalign train --config <recipe> <args>` from the source folder (the recipes' paths are
// relative to it); prints the output when it fails.
int run_train(const std::string& recipe, const std::string& args, std::string* output);

// What one run of `qalign` cost: its exit code (-1 when killed), combined output, peak resident
// memory and wall time. The command runs in the source folder, as a user's shell would.
struct Measured {
  int exit_code = -1;
  std::string output;
  double peak_mb = 0;
  double seconds = 0;
  bool timed_out = false;
};
// Whether the run's output says `text`.
inline bool output_has(const Measured& m, const std::string& text) { return m.output.find(text) != std::string::npos; }
// Runs `qalign <args>` (args are split by the shell) and kills it after `limit_s` seconds.
Measured run_qalign_measured(const std::string& args, double limit_s = 60);
// Runs `command` with /bin/sh in the source folder (for what must come before qalign: ulimit,
// environment variables, another user; end it with `exec qalign ...` to measure qalign itself),
// killed after `limit_s` seconds.
Measured run_shell_measured(const std::string& command, double limit_s = 60);
// Runs `f` and returns the qalign::Error message it must throw (a test failure when it throws none).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no qalign::Error thrown";
  return "";
}

// Where device-aware tests run: QALIGN_TEST_DEVICE=cuda (the GPU check), else the CPU.
torch::Device test_device();

// A fresh folder under /tmp for one test process (tests run as parallel processes, so a fixed
// name would be shared), removed with everything in it when the object goes.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& tag = "qalign");
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace qalign::test
