// Issue 32, through the real command: the rows of `qalign score --out` belong to their job (a
// rerun with another threshold, keep list or model weights, or other inputs, is refused naming
// what differs), a threshold that is not a number is refused, names that are not UTF-8 are scored
// and written losslessly, a name with a line break stays out of the keep list, an over-long path
// is an error of its item, a list piped in works with --out, and level ranges and labels near
// ±1e308 give the levels and metrics their scaled-down copies give.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "tests/support/bounds.h"
#include "tests/support/fixtures.h"

using namespace qalign;
namespace fs = std::filesystem;

namespace {

const std::string kWide = test::kTinyInputs + "/img_wide.png", kTall = test::kTinyInputs + "/img_tall.jpg";

std::string score_args(const std::string& model, const std::string& extra) {
  return "score --model " + model + " --batch-size 2 " + extra;
}

std::string quoted(const std::string& path) { return "'" + path + "'"; }

// The fixture model copied to `dir`, its safetensors the weights that load.
std::string copy_model(const std::string& dir) {
  fs::copy(test::source_dir() + "/" + test::kTinyModel, dir, fs::copy_options::recursive);
  fs::remove(dir + "/pytorch_model.bin");
  return dir;
}

// The final norm's weights negated: new weights at the same path, other scores.
void negate_final_norm(const std::string& dir) {
  const std::string path = dir + "/model.safetensors";
  auto bytes = test::read_file(path);
  uint64_t header = 0;
  std::memcpy(&header, bytes.data(), 8);
  const auto meta = nlohmann::json::parse(bytes.substr(8, header));
  const auto& t = meta.at("model.norm.weight");
  for (size_t at = 8 + header + t["data_offsets"][0].get<size_t>();
       at < 8 + header + t["data_offsets"][1].get<size_t>(); at += 4)
    bytes[at + 3] = static_cast<char>(bytes[at + 3] ^ 0x80);  // the sign bit of a little-endian float
  test::write_file(path, bytes);
}

std::string picture_bytes() { return test::read_file(test::source_dir() + "/" + kWide); }

}  // namespace

TEST(ScoreJobIdentity, AnotherThresholdOrKeepListIsRefusedNamingIt) {
  const test::ScratchDir d("qalign-scorejob");
  const auto out = d.file("r.jsonl"), keep = d.file("keep.txt");
  const auto job = [&](const std::string& threshold, const std::string& list) {
    return test::run_qalign_bounded(
        score_args(test::kTinyModel,
                   "--out " + out + " --threshold " + threshold + " --keep-list " + list + " " + kWide + " " + kTall));
  };
  auto m = job("1", keep);
  ASSERT_EQ(m.exit_code, 0) << m.output;
  const auto rows = test::read_file(out);
  EXPECT_EQ(test::read_file(keep), kWide + "\n" + kTall + "\n");

  m = job("1", keep);
  EXPECT_EQ(m.exit_code, 0) << m.output;
  EXPECT_TRUE(test::output_has(m, "is complete: nothing to do")) << m.output;

  m = job("6", keep);
  EXPECT_EQ(m.exit_code, 1) << m.output;
  EXPECT_TRUE(test::output_has(m, out + ": holds the rows of another job (threshold: 1.0 then, 6.0 now); --overwrite "
                                        "scores again, or give another --out"))
      << m.output;
  m = job("1", d.file("other.txt"));
  EXPECT_EQ(m.exit_code, 1) << m.output;
  EXPECT_TRUE(
      test::output_has(m, "holds the rows of another job (keep list: " + keep + " then, " + d.file("other.txt")))
      << m.output;
  EXPECT_FALSE(fs::exists(d.file("other.txt")));
  EXPECT_EQ(test::read_file(out), rows);
  EXPECT_EQ(test::read_file(keep), kWide + "\n" + kTall + "\n");

  m = test::run_qalign_bounded(score_args(
      test::kTinyModel, "--overwrite --out " + out + " --threshold 6 --keep-list " + keep + " " + kWide + " " + kTall));
  EXPECT_EQ(m.exit_code, 0) << m.output;
  EXPECT_EQ(test::read_file(keep), "");  // no score reaches 6
}

TEST(ScoreJobIdentity, ReplacedWeightsAreRefusedNamingTheFile) {
  const test::ScratchDir d("qalign-scorejob");
  const auto model = copy_model(d.file("M")), out = d.file("r.csv");
  const auto args = score_args(model, "--out " + out + " " + kWide + " " + kTall);
  auto m = test::run_qalign_bounded(args);
  ASSERT_EQ(m.exit_code, 0) << m.output;
  const auto before = test::read_file(out);

  negate_final_norm(model);
  m = test::run_qalign_bounded(args);
  EXPECT_EQ(m.exit_code, 1) << m.output;
  EXPECT_TRUE(test::output_has(m, out + ": holds the rows of another job (model files: model.safetensors: "))
      << m.output;
  EXPECT_EQ(test::read_file(out), before);

  m = test::run_qalign_bounded(args + " --overwrite");
  EXPECT_EQ(m.exit_code, 0) << m.output;
  EXPECT_NE(test::read_file(out), before);
}

TEST(ScoreJobIdentity, OtherInputsAreRefused) {
  const test::ScratchDir d("qalign-scorejob");
  fs::create_directories(d.file("pics"));
  test::write_file(d.file("pics/a.png"), picture_bytes());
  const auto args = score_args(test::kTinyModel, "--out " + d.file("r.jsonl") + " " + d.file("pics"));
  auto m = test::run_qalign_bounded(args);
  ASSERT_EQ(m.exit_code, 0) << m.output;
  test::write_file(d.file("pics/b.png"), picture_bytes());
  m = test::run_qalign_bounded(args);
  EXPECT_EQ(m.exit_code, 1) << m.output;
  EXPECT_TRUE(test::output_has(m, "r.jsonl: holds the rows of other inputs (1 then, 2 now: a folder or list changed"))
      << m.output;
  fs::remove(d.file("pics/a.png"));  // as many names, other ones
  m = test::run_qalign_bounded(args);
  EXPECT_EQ(m.exit_code, 1) << m.output;
  EXPECT_TRUE(test::output_has(m, "holds the rows of other inputs (1 then and now, named otherwise")) << m.output;
}

TEST(ScoreJobIdentity, ARestartOverAChangedFolderIsRefusedAtTheMerge) {
  const test::ScratchDir d("qalign-scorejob");
  fs::create_directories(d.file("pics"));
  for (int i = 10; i < 22; ++i) test::write_file(d.file("pics/" + std::to_string(i) + ".png"), picture_bytes());
  const auto out = d.file("r.jsonl"), parts = out + ".parts";
  const auto args =
      "score --model " + test::kTinyModel + " --workers 0 --batch-size 1 --out " + out + " " + d.file("pics");
  // Killed once its first row is in the parts.
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const auto script = "cd " + test::source_dir() + " && OMP_NUM_THREADS=1 exec " + test::qalign_binary() + " " +
                        args + " > /dev/null 2>&1";
    ::execl("/bin/sh", "sh", "-c", script.c_str(), nullptr);
    ::_exit(127);
  }
  const auto rows_in_parts = [&] {
    std::error_code ec;
    if (!fs::exists(parts + "/rank-0-of-1.rows", ec)) return false;
    return test::read_file(parts + "/rank-0-of-1.rows").find("\n\n") != std::string::npos;
  };
  for (int i = 0; i < 10000 && !rows_in_parts() && ::waitpid(pid, nullptr, WNOHANG) == 0; ++i) ::usleep(2000);
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  ASSERT_TRUE(rows_in_parts()) << "the run ended before its first row";
  if (fs::exists(out)) GTEST_SKIP() << "the run finished before the kill";

  test::write_file(d.file("pics/00.png"), picture_bytes());  // every later input moves down one place
  const auto m = test::run_qalign_bounded(args);
  EXPECT_EQ(m.exit_code, 1) << m.output;
  EXPECT_TRUE(test::output_has(m, parts + ": holds rows of other inputs than this run names")) << m.output;
  EXPECT_FALSE(fs::exists(out));
}

TEST(ScoreJobIdentity, ThresholdThatIsNotANumberIsRefused) {
  for (const std::string t : {"nan", "inf", "-inf"}) {
    const auto m = test::run_qalign_bounded(score_args(test::kTinyModel, "--threshold " + t + " " + kWide));
    EXPECT_EQ(m.exit_code, 1) << m.output;
    EXPECT_TRUE(test::output_has(m, "--threshold: must be a finite score, got")) << m.output;
  }
}

TEST(ScoreNames, NotUtf8IsScoredAndWrittenLosslessly) {
  const test::ScratchDir d("qalign-scorejob");
  fs::create_directories(d.file("pics"));
  const std::string odd = d.file("pics/caf\xE9-\xFF.png");  // Latin-1 é and a byte no UTF-8 holds
  test::write_file(odd, picture_bytes());
  test::write_file(d.file("pics/plain.png"), picture_bytes());
  const std::string escaped = d.file("pics/caf\\xe9-\\xff.png");
  std::string hex;
  for (const unsigned char c : odd) {
    char b[3];
    std::snprintf(b, sizeof b, "%02x", c);
    hex += b;
  }

  // --json on stdout, and --out .jsonl: "input" escaped, "input_bytes" the name's bytes in hex.
  auto m = test::run_qalign_bounded(score_args(test::kTinyModel, "--json " + d.file("pics")));
  ASSERT_EQ(m.exit_code, 0) << m.output;
  EXPECT_TRUE(test::output_has(m, "{\"input\":" + nlohmann::json(escaped).dump() + ",\"input_bytes\":\"" + hex + "\","))
      << m.output;
  m = test::run_qalign_bounded(score_args(
      test::kTinyModel,
      "--out " + d.file("r.jsonl") + " --threshold 0 --keep-list " + d.file("keep.txt") + " " + d.file("pics")));
  ASSERT_EQ(m.exit_code, 0) << m.output;
  const auto rows = test::read_jsonl(d.file("r.jsonl"));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["input"], escaped);
  EXPECT_EQ(rows[0]["input_bytes"], hex);
  EXPECT_TRUE(rows[0]["score"].is_number()) << rows[0];
  EXPECT_FALSE(rows[1].contains("input_bytes"));
  EXPECT_NEAR(rows[0]["score"].get<double>(), rows[1]["score"].get<double>(), 1e-5);  // the same picture
  // The keep list holds the names as the disk does, for a later @list.
  EXPECT_EQ(test::read_file(d.file("keep.txt")), odd + "\n" + d.file("pics/plain.png") + "\n");

  // CSV is bytes: its input column holds the name as it is.
  m = test::run_qalign_bounded(score_args(test::kTinyModel, "--out " + d.file("r.csv") + " " + d.file("pics")));
  ASSERT_EQ(m.exit_code, 0) << m.output;
  std::istringstream csv(test::read_file(d.file("r.csv")));
  std::string header, line;
  std::getline(csv, header);
  std::getline(csv, line);
  EXPECT_EQ(line.substr(0, odd.size() + 1), odd + ",") << line;
}

TEST(ScoreNames, ALineBreakInANameKeepsItOutOfTheKeepList) {
  const test::ScratchDir d("qalign-scorejob");
  fs::create_directories(d.file("pics"));
  test::write_file(d.file("pics/a\nb.png"), picture_bytes());
  test::write_file(d.file("pics/c.png"), picture_bytes());
  auto m = test::run_qalign_bounded(
      score_args(test::kTinyModel, "--threshold 0 --keep-list " + d.file("keep.txt") + " " + d.file("pics")));
  EXPECT_EQ(m.exit_code, 0) << m.output;
  EXPECT_TRUE(test::output_has(m, "left out of the keep list: \"" + d.file("pics/a\\nb.png") +
                                      "\" holds a line break, which a list of one name per line cannot hold"))
      << m.output;
  EXPECT_EQ(test::read_file(d.file("keep.txt")), d.file("pics/c.png") + "\n");

  m = test::run_qalign_bounded(score_args(
      test::kTinyModel,
      "--out " + d.file("r.jsonl") + " --threshold 0 --keep-list " + d.file("keep2.txt") + " " + d.file("pics")));
  EXPECT_EQ(m.exit_code, 0) << m.output;
  EXPECT_EQ(test::read_file(d.file("keep2.txt")), d.file("pics/c.png") + "\n");
  const auto rows = test::read_jsonl(d.file("r.jsonl"));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["input"], d.file("pics/a\nb.png"));  // its row keeps its score
  EXPECT_TRUE(rows[0]["score"].is_number());
}

TEST(ScoreNames, APathOverPathMaxIsAnErrorOfItsItem) {
  const test::ScratchDir d("qalign-scorejob");
  fs::create_directories(d.file("deep"));
  // Folders of 100-byte names, each made inside the last by descriptor (no path may pass 4095
  // bytes), down to a folder whose path fits, holding a picture whose 4100-byte path does not.
  std::string path = d.file("deep");
  int fd = ::open(path.c_str(), O_DIRECTORY | O_RDONLY);
  ASSERT_GE(fd, 0);
  const std::string level(100, 'd');
  while (path.size() + level.size() + 1 < 4000) {
    ASSERT_EQ(::mkdirat(fd, level.c_str(), 0755), 0);
    const int next = ::openat(fd, level.c_str(), O_DIRECTORY | O_RDONLY);
    ::close(fd);
    ASSERT_GE(fd = next, 0);
    path += "/" + level;
  }
  const std::string name = std::string(4100 - path.size() - 1 - 4, 'p') + ".png";
  const int file = ::openat(fd, name.c_str(), O_CREAT | O_WRONLY, 0644);
  ::close(fd);
  ASSERT_GE(file, 0);
  const auto bytes = picture_bytes();
  ASSERT_EQ(::write(file, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  ::close(file);
  path += "/" + name;
  ASSERT_GT(path.size(), 4096u);

  // In a folder walk and as an argument: a row with the error, the other input scored.
  for (const std::string& input : {d.file("deep"), path}) {
    const auto out = d.file(input == path ? "arg.jsonl" : "walk.jsonl");
    const auto m = test::run_qalign_bounded(score_args(test::kTinyModel, "--out " + out + " " + kWide + " " + input));
    EXPECT_EQ(m.exit_code, 1) << m.output.substr(0, 2000);
    EXPECT_TRUE(test::output_has(
        m, path + ": the path is " + std::to_string(path.size()) + " bytes, over the system's limit of 4095"))
        << m.output.substr(0, 2000);
    const auto rows = test::read_jsonl(out);
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_TRUE(rows[0]["score"].is_number());
    EXPECT_EQ(rows[1]["input"], path);
    EXPECT_TRUE(rows[1]["score"].is_null());
  }
  std::string log;
  test::run_command("rm -rf " + d.file("deep"), &log);  // remove_all stops at PATH_MAX
}

TEST(ScoreNames, AListPipedInWorksWithOut) {
  const test::ScratchDir d("qalign-scorejob");
  const auto cmd = "cd " + test::source_dir() + " && printf '%s\\n' " + kWide + " " + kTall + " | " +
                   test::qalign_binary() + " score --model " + test::kTinyModel + " @/dev/stdin --out " +
                   d.file("r.jsonl");
  std::string log;
  ASSERT_EQ(test::run_command(cmd, &log), 0) << log;
  const auto rows = test::read_jsonl(d.file("r.jsonl"));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["input"], kWide);
  EXPECT_EQ(rows[1]["input"], kTall);
  // The same list piped in again: the job is complete; another list is refused.
  ASSERT_EQ(test::run_command(cmd, &log), 0) << log;
  EXPECT_NE(log.find("is complete: nothing to do"), std::string::npos) << log;
  const auto other = "cd " + test::source_dir() + " && printf '%s\\n' " + kTall + " | " + test::qalign_binary() +
                     " score --model " + test::kTinyModel + " @/dev/stdin --out " + d.file("r.jsonl");
  EXPECT_EQ(test::run_command(other, &log), 1) << log;
  EXPECT_NE(log.find("holds the rows of other inputs (2 then, 1 now"), std::string::npos) << log;
}

TEST(ScoreRanges, LabelsNearTheLargestDoubleGetTheLevelsOfTheirScaledCopy) {
  const test::ScratchDir d("qalign-scorejob");
  // The same labels twice: as they are, and times 2^1021 (exact), which puts them near ±1e308.
  const std::vector<double> mos = {-5, -4.2, -3, -1.5, -0.5, 0.25, 1, 2.5, 3.75, 5};
  nlohmann::json small = nlohmann::json::array(), huge = nlohmann::json::array();
  for (size_t i = 0; i < mos.size(); ++i) {
    small.push_back({{"image", "p" + std::to_string(i) + ".png"}, {"gt_score", mos[i]}});
    huge.push_back({{"image", "p" + std::to_string(i) + ".png"}, {"gt_score", std::ldexp(mos[i], 1021)}});
  }
  test::write_file(d.file("small.json"), small.dump());
  test::write_file(d.file("huge.json"), huge.dump());
  std::map<std::string, std::string> answers[2];
  for (int k = 0; k < 2; ++k) {
    const auto in = d.file(k ? "huge.json" : "small.json"), out = d.file(k ? "huge-sft.json" : "small-sft.json");
    const auto m = test::run_qalign_bounded("data make-sft --out-of-range clamp --input " + in + " --out " + out);
    ASSERT_EQ(m.exit_code, 0) << m.output;
    for (const auto& r : nlohmann::json::parse(test::read_file(out)))
      answers[k][r["image"].dump()] = r["conversations"][1]["value"];
  }
  EXPECT_EQ(answers[0], answers[1]);
  std::set<std::string> levels;
  for (const auto& [image, answer] : answers[1]) levels.insert(answer);
  EXPECT_EQ(levels.size(), 5u);  // every level, not every record "bad"

  // An explicit range as wide: the same.
  const auto m = test::run_qalign_bounded("data make-sft --out-of-range clamp --range -1.7e308 1.7e308 --input " +
                                          d.file("huge.json") + " --out " + d.file("range-sft.json"));
  ASSERT_EQ(m.exit_code, 0) << m.output;
  EXPECT_NE(test::read_file(d.file("range-sft.json")).find("excellent"), std::string::npos);
}

TEST(ScoreRanges, SoftLabelsRefuseARangeWiderThanADouble) {
  const test::ScratchDir d("qalign-scorejob");
  test::write_file(d.file("huge.json"), R"([{"image": "a.png", "gt_score": -1e308, "std": 1},
    {"image": "b.png", "gt_score": 1e308, "std": 1}])");
  const auto m = test::run_qalign_bounded("data make-sft --soft-labels pdf --input " + d.file("huge.json") + " --out " +
                                          d.file("sft.json"));
  EXPECT_EQ(m.exit_code, 1) << m.output;
  EXPECT_TRUE(test::output_has(m, "--range: range: MAX - MIN is wider than a double holds")) << m.output;
  EXPECT_FALSE(fs::exists(d.file("sft.json")));
}

TEST(ScoreRanges, EvalMetricsOfLabelsNearTheLargestDoubleAreThoseOfTheirScaledCopy) {
  const test::ScratchDir d("qalign-scorejob");
  const std::vector<std::pair<std::string, double>> items = {
      {"img_wide.png", 3.5}, {"img_tall.jpg", -4.75}, {"img_big.png", 1.0}, {"img_wide.png", -2.0}};
  nlohmann::json small = nlohmann::json::array(), huge = nlohmann::json::array();
  for (const auto& [image, mos] : items) {
    small.push_back({{"image", image}, {"gt_score", mos}});
    huge.push_back({{"image", image}, {"gt_score", std::ldexp(mos, 1021)}});
  }
  test::write_file(d.file("set.json"), small.dump());
  fs::create_directories(d.file("huge"));
  test::write_file(d.file("huge/set.json"), huge.dump());
  nlohmann::json results[2];
  for (int k = 0; k < 2; ++k) {
    const auto out = d.file(k ? "E-huge" : "E-small");
    const auto m = test::run_qalign_bounded("eval --model " + test::kTinyModel + " --data " +
                                            d.file(k ? "huge/set.json" : "set.json") + " --image-folder " +
                                            test::kTinyInputs + " --batch-size 2 --out " + out);
    ASSERT_EQ(m.exit_code, 0) << m.output;
    results[k] = nlohmann::json::parse(test::read_file(out + "/results.json"))["set"];
  }
  for (const char* key : {"srcc", "plcc", "krcc", "plcc_logistic"}) {
    ASSERT_TRUE(results[0][key].is_number()) << results[0];
    EXPECT_EQ(results[1][key], results[0][key]) << key;
  }
  EXPECT_EQ(results[1]["rmse_logistic"].get<double>(), std::ldexp(results[0]["rmse_logistic"].get<double>(), 1021));
}
