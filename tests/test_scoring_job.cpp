// The `qalign score` job (qalign/scoring/job.h) driven in-process, without the qalign binary: the
// tiny fixture model on copies of the fixture photographs and videos, ranks as threads of this
// process, and a decoder that wraps data::timed_decode to record the inputs each rank reads, or to
// stop a run midway as a kill would. The rank split, a torn chunk cut off on restart, a restart
// with another number of ranks, the merge's input order and the threshold's keep list.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "data/timed_decode.h"
#include "qalign/base/atomic_file.h"
#include "qalign/scoring/job.h"
#include "qalign/scoring/parts.h"
#include "tests/support/fixtures.h"

using namespace qalign;
namespace fs = std::filesystem;

namespace {

// Thrown by a decoder to end a run midway. Not a std::exception: the job makes those failed rows,
// this one leaves it as a kill would.
struct Stop {};

// The ranks of one job as threads: a barrier and a sum over them. abort() releases the ranks that
// wait with an error, as a lost process would, so that a stopped rank cannot hang the others.
class ThreadRanks : public scoring::Collective {
 public:
  explicit ThreadRanks(int world) : world_(world) {}
  void barrier() override {
    auto none = torch::zeros({1}, torch::kFloat64);
    allreduce_sum(none);
  }
  void allreduce_sum(torch::Tensor& t) override {
    std::unique_lock<std::mutex> lock(mutex_);
    if (aborted_) throw std::runtime_error("another rank stopped");
    sum_ = sum_.defined() ? sum_ + t : t.clone();
    const int64_t round = round_;
    if (++arrived_ == world_) {
      result_ = sum_;
      sum_ = torch::Tensor();
      arrived_ = 0;
      ++round_;
      changed_.notify_all();
    } else {
      changed_.wait(lock, [&] { return round_ != round || aborted_; });
      if (round_ == round) throw std::runtime_error("another rank stopped");
    }
    t.copy_(result_);
  }
  void abort() {
    std::lock_guard<std::mutex> lock(mutex_);
    aborted_ = true;
    changed_.notify_all();
  }

 private:
  const int world_;
  std::mutex mutex_;
  std::condition_variable changed_;
  int arrived_ = 0;
  int64_t round_ = 0;
  bool aborted_ = false;
  torch::Tensor sum_, result_;
};

// The inputs each rank's decoder was given, in the order it was given them.
class Reads {
 public:
  explicit Reads(int world) : by_rank_(world) {}
  // data::timed_decode for `rank`, recording each input; throws Stop instead for those in `stop_at`.
  scoring::Decoder decoder(int rank, std::set<std::string> stop_at = {}) {
    return [this, rank, stop_at](const std::string& path, int64_t image_size) {
      if (stop_at.count(path)) throw Stop{};
      {
        std::lock_guard<std::mutex> lock(mutex_);
        by_rank_[rank].push_back(path);
      }
      return data::timed_decode(path, image_size);
    };
  }
  std::vector<std::string> of(int rank) {
    std::lock_guard<std::mutex> lock(mutex_);
    return by_rank_[rank];
  }

 private:
  std::mutex mutex_;
  std::vector<std::vector<std::string>> by_rank_;
};

constexpr int kStopped = -1;  // a rank's exit code when its run was stopped or failed

// Runs `job` on `world` ranks, each a thread with the decoder `decoder(rank)`; returns their exit
// codes. An unexpected error is a test failure.
std::vector<int> run_ranks(const scoring::ScoreJob& job, int world,
                           const std::function<scoring::Decoder(int rank)>& decoder) {
  auto group = std::make_shared<ThreadRanks>(world);
  std::vector<int> codes(world, kStopped);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      scoring::Launch launch;
      launch.where = [r, world] {
        distributed::LaunchEnv env;
        env.rank = r;
        env.world_size = world;
        return env;
      };
      launch.join = [group](const distributed::LaunchEnv&,
                            std::chrono::seconds) -> std::shared_ptr<scoring::Collective> { return group; };
      try {
        codes[r] = scoring::score(job, scoring::input_stream(job.inputs), decoder(r), launch);
      } catch (const Stop&) {
        group->abort();
      } catch (const std::exception& e) {
        group->abort();
        if (std::string(e.what()) != "another rank stopped") ADD_FAILURE() << "rank " << r << ": " << e.what();
      }
    });
  for (auto& t : threads) t.join();
  return codes;
}

class ScoringJob : public ::testing::Test {
 protected:
  // 20 inputs in an @list: three copies of each of six fixture photographs, the two fixture videos
  // among them, so that chunks of 4 mix images and videos.
  void SetUp() override {
    const std::vector<std::string> photos = {"qalign-448/inputs/building.jpg",  "qalign-448/inputs/baboon.jpg",
                                             "qalign-448/inputs/smarties.png",  "qalign-tiny/inputs/img_big.png",
                                             "qalign-tiny/inputs/img_tall.jpg", "qalign-tiny/inputs/img_wide.png"};
    fs::create_directories(dir_.file("in"));
    std::string list;
    for (int i = 0; i < 18; ++i) {
      const std::string from = test::fixture(photos[i % photos.size()]);
      inputs_.push_back(dir_.file("in/" + std::to_string(i) + fs::path(from).extension().string()));
      fs::copy_file(from, inputs_.back());
      if (i == 5) inputs_.push_back(test::fixture("qalign-tiny/inputs/video.avi"));
      if (i == 12) inputs_.push_back(test::fixture("qalign-tiny/inputs/video.mp4"));
    }
    for (const auto& p : inputs_) list += p + "\n";
    io::write_file_atomic(dir_.file("list.txt"), list);
    for (size_t i = 0; i < inputs_.size(); ++i) index_[inputs_[i]] = static_cast<int64_t>(i);
  }

  scoring::ScoreJob job(const std::string& out) const {
    scoring::ScoreJob j;
    j.model = test::fixture("qalign-tiny/model");
    j.batch_size = 4;
    j.workers = 1;
    j.out = out.empty() ? "" : dir_.file(out);
    j.inputs = {"@" + dir_.file("list.txt")};
    return j;
  }

  // Each rank's decoder records into `reads`.
  static std::function<scoring::Decoder(int)> recording(Reads* reads) {
    return [reads](int rank) { return reads->decoder(rank); };
  }

  std::set<std::string> inputs_from(int64_t first) const { return {inputs_.begin() + first, inputs_.end()}; }

  // The rows of `out`, checked to be one per input in input order.
  std::vector<nlohmann::json> rows_in_input_order(const std::string& out) const {
    const auto rows = test::read_jsonl(dir_.file(out));
    EXPECT_EQ(rows.size(), inputs_.size());
    for (size_t i = 0; i < std::min(rows.size(), inputs_.size()); ++i) {
      EXPECT_EQ(rows[i]["input"], inputs_[i]) << out << " row " << i;
      EXPECT_TRUE(rows[i]["error"].is_null()) << rows[i];
    }
    return rows;
  }

  static void expect_same_scores(const std::vector<nlohmann::json>& a, const std::vector<nlohmann::json>& b) {
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i]["input"], b[i]["input"]) << i;
      EXPECT_EQ(a[i]["media"], b[i]["media"]) << i;
      EXPECT_NEAR(a[i]["score"].get<double>(), b[i]["score"].get<double>(), 1e-5) << i;
    }
  }

  test::ScratchDir dir_{"qalign-scoring-job"};
  std::vector<std::string> inputs_;
  std::map<std::string, int64_t> index_;
};

TEST_F(ScoringJob, TheRanksSharesAreDisjointAndCoverEveryInput) {
  constexpr int kWorld = 3;
  Reads reads(kWorld);
  EXPECT_EQ(run_ranks(job("three.jsonl"), kWorld, recording(&reads)), std::vector<int>(kWorld, 0));
  std::multiset<std::string> all;
  for (int r = 0; r < kWorld; ++r) {
    const auto share = reads.of(r);
    EXPECT_FALSE(share.empty()) << "rank " << r;
    for (const auto& path : share) {
      ASSERT_TRUE(index_.count(path)) << path;
      EXPECT_EQ(index_[path] % kWorld, r) << path << " read by rank " << r;
    }
    all.insert(share.begin(), share.end());
  }
  EXPECT_EQ(all, std::multiset<std::string>(inputs_.begin(), inputs_.end())) << "each input read by one rank, once";
  rows_in_input_order("three.jsonl");
  EXPECT_FALSE(fs::exists(dir_.file("three.jsonl.parts")));
}

TEST_F(ScoringJob, ATornLastChunkIsCutOffOnRestartAndItsInputsScoredAgain) {
  Reads whole(1);
  ASSERT_EQ(run_ranks(job("whole.jsonl"), 1, recording(&whole)), std::vector<int>{0});

  // Stopped while reading input 13: chunks [0-3], [4-7] and [8-11] are in the part.
  auto stopped = job("torn.jsonl");
  stopped.workers = 0;
  Reads first(1);
  ASSERT_EQ(run_ranks(stopped, 1, [&](int rank) { return first.decoder(rank, {inputs_[13]}); }),
            std::vector<int>{kStopped});
  const auto folder = scoring::parts_folder(dir_.file("torn.jsonl"));
  const auto part = scoring::part_file(folder, 0, 1);
  ASSERT_EQ(scoring::scan_parts(folder).count(), 12);

  // A kill in the middle of writing the last chunk: half of it is on disk, unclosed.
  const std::string bytes = io::read_file(part);
  ASSERT_GE(bytes.size(), 2u);
  const size_t last_chunk = bytes.rfind("\n\n", bytes.size() - 3) + 2;
  io::write_file_atomic(part, bytes.substr(0, last_chunk + (bytes.size() - last_chunk) / 2));
  const auto done = scoring::scan_parts(folder);
  ASSERT_EQ(done.count(), 8) << "the torn chunk's rows do not count";

  Reads second(1);
  ASSERT_EQ(run_ranks(stopped, 1, recording(&second)), std::vector<int>{0});
  EXPECT_EQ(second.of(0), std::vector<std::string>(inputs_.begin() + 8, inputs_.end()))
      << "the torn chunk's inputs and the rest are read again, nothing before";
  EXPECT_EQ(io::read_file(dir_.file("torn.jsonl")), io::read_file(dir_.file("whole.jsonl")))
      << "the same bytes as an uninterrupted run";
  EXPECT_FALSE(fs::exists(folder));
}

TEST_F(ScoringJob, ARestartWithAnotherNumberOfRanksScoresEachInputExactlyOnce) {
  Reads one(1);
  ASSERT_EQ(run_ranks(job("one.jsonl"), 1, recording(&one)), std::vector<int>{0});
  const auto reference = rows_in_input_order("one.jsonl");

  // Two ranks, both stopped once they reach input 9.
  Reads first(2);
  EXPECT_EQ(run_ranks(job("restart.jsonl"), 2, [&](int rank) { return first.decoder(rank, inputs_from(9)); }),
            std::vector<int>(2, kStopped));
  const auto folder = scoring::parts_folder(dir_.file("restart.jsonl"));
  const auto done = scoring::scan_parts(folder);
  ASSERT_GT(done.count(), 0);
  ASSERT_LT(done.count(), static_cast<int64_t>(inputs_.size()));

  constexpr int kWorld = 3;
  Reads second(kWorld);
  EXPECT_EQ(run_ranks(job("restart.jsonl"), kWorld, recording(&second)), std::vector<int>(kWorld, 0));
  std::multiset<std::string> read, expected;
  for (const auto& path : inputs_)
    if (!done.contains(index_[path])) expected.insert(path);
  for (int r = 0; r < kWorld; ++r)
    for (const auto& path : second.of(r)) {
      EXPECT_EQ(index_[path] % kWorld, r) << path << " read by rank " << r;
      read.insert(path);
    }
  EXPECT_EQ(read, expected) << "the second run reads each input the first left, once, and no other";
  expect_same_scores(rows_in_input_order("restart.jsonl"), reference);
  EXPECT_FALSE(fs::exists(folder));
}

TEST_F(ScoringJob, TheMergedFileIsInInputOrderWhateverOrderTheRanksFinishIn) {
  constexpr int kWorld = 3;
  // Rank r reads each input slowly or fast, so that the ranks finish first to last, then last to first.
  auto paced = [](Reads* reads, std::vector<int> ms) {
    return [reads, ms](int rank) -> scoring::Decoder {
      auto inner = reads->decoder(rank);
      return [inner, wait = ms[rank]](const std::string& path, int64_t image_size) {
        std::this_thread::sleep_for(std::chrono::milliseconds(wait));
        return inner(path, image_size);
      };
    };
  };
  Reads forward(kWorld), backward(kWorld);
  ASSERT_EQ(run_ranks(job("forward.jsonl"), kWorld, paced(&forward, {0, 40, 80})), std::vector<int>(kWorld, 0));
  ASSERT_EQ(run_ranks(job("backward.jsonl"), kWorld, paced(&backward, {80, 40, 0})), std::vector<int>(kWorld, 0));
  const auto a = rows_in_input_order("forward.jsonl"), b = rows_in_input_order("backward.jsonl");
  expect_same_scores(a, b);

  Reads one(1);
  ASSERT_EQ(run_ranks(job("one.jsonl"), 1, recording(&one)), std::vector<int>{0});
  expect_same_scores(a, rows_in_input_order("one.jsonl"));
}

TEST_F(ScoringJob, TheKeepListHoldsExactlyTheInputsAtOrAboveTheThreshold) {
  Reads reads(1);
  ASSERT_EQ(run_ranks(job("all.jsonl"), 1, recording(&reads)), std::vector<int>{0});
  const auto rows = rows_in_input_order("all.jsonl");
  // The threshold is an input's own score, so the comparison's equality case is tested too.
  std::vector<double> scores;
  for (const auto& r : rows) scores.push_back(r["score"].get<double>());
  std::vector<double> sorted = scores;
  std::sort(sorted.begin(), sorted.end());
  const double threshold = sorted[sorted.size() / 2];
  ASSERT_LT(sorted.front(), threshold) << "the fixture inputs must not all score the same";
  std::string expected;
  for (size_t i = 0; i < rows.size(); ++i)
    if (scores[i] >= threshold) expected += inputs_[i] + "\n";

  // With --out: the merge writes the keep list.
  auto kept = job("kept.jsonl");
  kept.threshold = threshold;
  kept.keep_list = dir_.file("keep.txt");
  ASSERT_EQ(run_ranks(kept, 1, recording(&reads)), std::vector<int>{0});
  EXPECT_EQ(io::read_file(dir_.file("keep.txt")), expected);
  expect_same_scores(rows_in_input_order("kept.jsonl"), rows);

  // With --out and no --keep-list: the kept inputs go to stdout.
  auto to_stdout = job("stdout.jsonl");
  to_stdout.threshold = threshold;
  testing::internal::CaptureStdout();
  const auto codes = run_ranks(to_stdout, 1, recording(&reads));
  EXPECT_EQ(testing::internal::GetCapturedStdout(), expected);
  EXPECT_EQ(codes, std::vector<int>{0});

  // Without --out: rows on stdout, the kept inputs to the keep list as they are scored.
  auto no_out = job("");
  no_out.threshold = threshold;
  no_out.keep_list = dir_.file("keep-rows.txt");
  no_out.json = true;
  testing::internal::CaptureStdout();
  const auto codes_no_out = run_ranks(no_out, 1, recording(&reads));
  const std::string printed = testing::internal::GetCapturedStdout();
  EXPECT_EQ(codes_no_out, std::vector<int>{0});
  EXPECT_EQ(io::read_file(dir_.file("keep-rows.txt")), expected);
  std::istringstream lines(printed);
  std::string line;
  for (size_t i = 0; i < inputs_.size(); ++i) {
    ASSERT_TRUE(std::getline(lines, line)) << printed;
    EXPECT_EQ(nlohmann::json::parse(line)["input"], inputs_[i]);
  }
}

}  // namespace
