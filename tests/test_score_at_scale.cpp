// `qalign score --out` on a collection: 2 000 pictures cut and distorted from the fixture
// photographs (Debian's opencv-doc samples), a few broken inputs and two videos. Two processes
// give the rows of one; a run killed at random moments and restarted ends with the bytes of an
// uninterrupted one; CSV, the threshold's keep list and the job check.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "data/distort.h"
#include "data/image_decode.h"
#include "qalign/base/atomic_file.h"
#include "tests/support/fixtures.h"

using namespace qalign;
namespace fs = std::filesystem;

namespace {

constexpr int kPictures = 2000;

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// Writes the collection under `dir` and returns the @list naming it: the pictures (crops of
// 40-200 px, every distortion type at random strengths, JPEG and PNG), then a missing file, a text
// file named .jpg, a truncated PNG and the fixture's two videos.
std::string make_collection(const std::string& dir) {
  std::vector<data::Image> photos;
  for (const char* name : {"building.jpg", "baboon.jpg", "smarties.png"})
    photos.push_back(data::decode_image(test::fixture(std::string("qalign-448/inputs/") + name)));
  std::mt19937 rng(7);
  std::ostringstream list;
  for (int i = 0; i < kPictures; ++i) {
    const auto& photo = photos[i % photos.size()];
    const int w = std::uniform_int_distribution<int>(40, 200)(rng),
              h = std::uniform_int_distribution<int>(40, 200)(rng);
    const int x = std::uniform_int_distribution<int>(0, photo.width - w)(rng);
    const int y = std::uniform_int_distribution<int>(0, photo.height - h)(rng);
    data::Image crop(w, h);
    for (int r = 0; r < h; ++r) std::copy_n(photo.pixel(x, y + r), w * 3, crop.pixel(0, r));
    const auto type = data::all_distortions()[i % data::all_distortions().size()];
    const double strength = std::uniform_real_distribution<double>(0, 1)(rng);
    const auto folder = dir + "/" + std::to_string(i / 250);
    fs::create_directories(folder);
    const auto path = folder + "/pic" + std::to_string(i) + (i % 2 ? ".png" : ".jpg");
    const auto damaged = data::distort(crop, type, strength, static_cast<uint64_t>(i));
    write_bytes(path, i % 2 ? data::encode_png(damaged) : data::encode_jpeg(damaged, 0.2));
    list << path << "\n";
  }
  list << dir << "/missing.jpg\n";
  std::ofstream(dir + "/text.jpg") << "not a picture\n";
  list << dir << "/text.jpg\n";
  auto png = data::encode_png(photos[0]);
  png.resize(png.size() / 3);
  write_bytes(dir + "/truncated.png", png);
  list << dir << "/truncated.png\n";
  list << test::fixture("qalign-tiny/inputs/video.avi") << "\n"
       << test::fixture("qalign-tiny/inputs/video.mp4") << "\n";
  io::write_file_atomic(dir + "/list.txt", list.str());
  return dir + "/list.txt";
}

// One math thread: the decoding threads share the cores, and OpenMP threads that must wait for a
// busy core at every matrix product make a tiny model a hundred times slower.
std::string score_command(const std::string& list, const std::string& out, const std::string& extra = "") {
  return "env OMP_NUM_THREADS=1 " + test::qalign_binary() + " score --model " + test::fixture("qalign-tiny/model") +
         " --batch-size 8 --workers 2 @" + list + " --out " + out + " " + extra;
}

int64_t lines_in_parts(const std::string& folder) {
  int64_t n = 0;
  if (!fs::exists(folder)) return -1;
  for (const auto& e : fs::directory_iterator(folder))
    if (e.path().extension() == ".rows") {
      std::ifstream in(e.path());
      std::string line;
      while (std::getline(in, line)) n += !line.empty();
    }
  return n;
}

// Runs `command` and SIGKILLs it once its parts hold `rows` rows, after `max_s` seconds, or not
// at all when it ends first.
void kill_at(const std::string& command, const std::string& parts, int64_t rows, double max_s) {
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", ("exec " + command + " > /dev/null 2>&1").c_str(), nullptr);
    ::_exit(127);
  }
  const auto begun = std::chrono::steady_clock::now();
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - begun).count() < max_s &&
         lines_in_parts(parts) < rows && ::waitpid(pid, nullptr, WNOHANG) == 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
}

class ScoreAtScale : public ::testing::Test {
 protected:
  void SetUp() override { list_ = make_collection(dir_.file("pics")); }
  test::ScratchDir dir_{"qalign-score-scale"};
  std::string list_;
};

}  // namespace

TEST_F(ScoreAtScale, TwoProcessesGiveTheRowsOfOneInInputOrder) {
  std::string out;
  ASSERT_EQ(test::run_command(score_command(list_, dir_.file("one.jsonl")), &out), 1) << out;  // 3 broken inputs
  EXPECT_NE(out.find("3 of 2005 inputs could not be scored"), std::string::npos) << out;
  const int port = test::free_port();
  const int rc = test::run_command(test::qalign_binary() + " launch --nproc-per-node 2 --master-port " +
                                       std::to_string(port) + " -- " + score_command(list_, dir_.file("two.jsonl")),
                                   &out);
  EXPECT_NE(rc, 0) << out;  // the broken inputs again
  EXPECT_NE(out.find("stage times summed over 2 processes"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(dir_.file("two.jsonl.parts"))) << "the parts are removed once merged";

  const auto one = test::read_jsonl(dir_.file("one.jsonl")), two = test::read_jsonl(dir_.file("two.jsonl"));
  ASSERT_EQ(one.size(), 2005u);
  ASSERT_EQ(two.size(), one.size());
  std::ifstream list(list_);
  std::string input;
  double worst = 0;
  for (size_t i = 0; i < one.size(); ++i) {
    std::getline(list, input);
    ASSERT_EQ(one[i]["input"], input) << i;
    ASSERT_EQ(two[i]["input"], input) << i;
    EXPECT_EQ(two[i]["media"], one[i]["media"]) << i;
    EXPECT_EQ(two[i]["error"], one[i]["error"]) << i;
    EXPECT_EQ(two[i]["level"], one[i]["level"]) << i;
    if (!one[i]["error"].is_null()) continue;
    worst = std::max(worst, std::abs(two[i]["score"].get<double>() - one[i]["score"].get<double>()));
    for (const auto& [level, p] : one[i]["probs"].items())
      worst = std::max(worst, std::abs(two[i]["probs"][level].get<double>() - p.get<double>()));
  }
  EXPECT_LE(worst, 1e-6);
  EXPECT_EQ(one[2000]["error"], dir_.file("pics") + "/missing.jpg: image file does not exist");
  EXPECT_EQ(one[2003]["media"], "video");
  EXPECT_TRUE(one[2003]["error"].is_null()) << one[2003];
}

TEST_F(ScoreAtScale, KilledTenTimesAtRandomMomentsThenRestartedEqualsAnUninterruptedRun) {
  std::string out;
  ASSERT_EQ(test::run_command(score_command(list_, dir_.file("whole.jsonl")), &out), 1) << out;

  // The moments are drawn in rows written rather than seconds, so they fall inside the run
  // whatever this machine's speed: the first kill during start-up, eight while rows are being
  // appended, the last as the final rows land (the merge).
  std::mt19937 rng(11);
  const auto killed = dir_.file("killed.jsonl");
  int64_t before = 0;
  int partway = 0;
  for (int k = 0; k < 10; ++k) {
    const int64_t target = k == 0 ? 0 : k == 9 ? 2005 : before + std::uniform_int_distribution<int64_t>(1, 200)(rng);
    kill_at(score_command(list_, killed), killed + ".parts", target, k == 0 ? 0.1 : 300);
    // No parts folder: not begun, or complete (then the output is there).
    const int64_t in_parts = lines_in_parts(killed + ".parts");
    const int64_t rows = in_parts >= 0 ? in_parts : fs::exists(killed) ? 2005 : 0;
    EXPECT_GE(rows, before) << "rows are never lost, kill " << k;
    partway += rows > before && rows < 2005;
    before = rows;
  }
  EXPECT_GE(partway, 6) << "most kills land while rows are being appended";
  ASSERT_EQ(test::run_command(score_command(list_, killed), &out), 1) << out;
  EXPECT_EQ(io::read_file(killed), io::read_file(dir_.file("whole.jsonl")));
  EXPECT_FALSE(fs::exists(killed + ".parts"));

  // Once complete, the same command has nothing to do.
  ASSERT_EQ(test::run_command(score_command(list_, killed), &out), 0) << out;
  EXPECT_NE(out.find("is complete"), std::string::npos) << out;
}

TEST_F(ScoreAtScale, ARestartWithAnotherCommandIsRefusedNamingTheField) {
  std::string out;
  const auto killed = dir_.file("k.jsonl");
  kill_at(score_command(list_, killed), killed + ".parts", 1, 300);
  ASSERT_TRUE(fs::exists(killed + ".parts/job.json"));
  EXPECT_NE(test::run_command(score_command(list_, killed, "--task aesthetics"), &out), 0);
  EXPECT_NE(out.find("k.jsonl.parts/job.json: task: this run differs"), std::string::npos) << out;
  EXPECT_EQ(test::run_command(score_command(list_, killed, "--task aesthetics --overwrite"), &out), 1) << out;
  const auto rows = test::read_jsonl(killed);
  ASSERT_EQ(rows.size(), 2005u);
  EXPECT_EQ(rows.front()["task"], "aesthetics");
}

TEST(ScoreOutput, CsvRowsAndTheThresholdsKeepList) {
  test::ScratchDir dir("qalign-score-csv");
  const auto in = test::fixture("qalign-tiny/inputs/");
  io::write_file_atomic(dir.file("list.txt"), in + "img_wide.png\n" + in + "img_tall.jpg\n" +
                                                  dir.file("gone,\"odd\".jpg") + "\n" + in + "img_big.png\n" + in +
                                                  "video.avi\n");
  std::string out;
  ASSERT_EQ(
      test::run_command("(" + test::qalign_binary() + " score --json --model " + test::fixture("qalign-tiny/model") +
                            " @" + dir.file("list.txt") + " > " + dir.file("rows.jsonl") + ")",
                        &out),
      1)
      << out;
  const auto rows = test::read_jsonl(dir.file("rows.jsonl"));
  ASSERT_EQ(rows.size(), 5u);
  // A threshold between the scores, so some inputs are kept and some are not.
  std::vector<double> scores;
  for (const auto& r : rows)
    if (r["score"].is_number()) scores.push_back(r["score"]);
  std::sort(scores.begin(), scores.end());
  const double threshold = (scores[1] + scores[2]) / 2;

  ASSERT_EQ(test::run_command(test::qalign_binary() + " score --model " + test::fixture("qalign-tiny/model") + " @" +
                                  dir.file("list.txt") + " --out " + dir.file("rows.csv") + " --threshold " +
                                  std::to_string(threshold) + " --keep-list " + dir.file("keep.txt"),
                              &out),
            1)
      << out;
  std::istringstream csv(io::read_file(dir.file("rows.csv")));
  std::string line;
  std::getline(csv, line);
  EXPECT_EQ(line, "input,task,media,score,score01,level,p_excellent,p_good,p_fair,p_poor,p_bad,error");
  std::string kept;
  for (const auto& r : rows) {
    std::getline(csv, line);
    if (r["error"].is_null()) {
      EXPECT_EQ(line.substr(0, line.find(',')), r["input"]);
      const auto score = std::stod(line.substr(line.find(',', line.find(',', line.find(',') + 1) + 1) + 1));
      EXPECT_NEAR(score, r["score"].get<double>(), 1e-6) << line;
      if (score >= threshold) kept += r["input"].get<std::string>() + "\n";
    } else {  // quoted, as RFC 4180 asks of a field with a comma or a quote
      EXPECT_EQ(line, "\"" + dir.file("gone,\"\"odd\"\".jpg") + "\",quality,image,,,,,,,,,\"" +
                          dir.file("gone,\"\"odd\"\".jpg") + ": image file does not exist\"");
    }
  }
  EXPECT_EQ(io::read_file(dir.file("keep.txt")), kept);
  EXPECT_EQ(std::count(kept.begin(), kept.end(), '\n'), 2);
}
