// Bad inputs, round three (issue 32): launchers that clean up, the right rank named, bounded
// rendezvous, sizes and timeouts checked for overflow. Each case runs the real `qalign` command
// and must end within 20 s and under 1.5 GB with a message naming the option, key or rank.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "qalign/config/train_config.h"
#include "qalign/distributed/job_size.h"
#include "qalign/distributed/process_group.h"
#include "tests/support/fixtures.h"

using namespace qalign;
namespace fs = std::filesystem;

// Named, not anonymous: the tests build as unity files, where another file's helpers share a scope.
namespace bad_launch_inputs {

// Within 20 s and 1.5 GB, exit code `rc`, and every one of `expected` in the output.
void expect_ends(const test::Measured& m, int rc, const std::vector<std::string>& expected) {
  EXPECT_FALSE(m.timed_out) << m.output;
  EXPECT_LT(m.seconds, 20.0) << m.output;
  EXPECT_LT(m.peak_mb, 1500.0) << m.output;
  EXPECT_EQ(m.exit_code, rc) << m.output;
  for (const auto& e : expected) EXPECT_NE(m.output.find(e), std::string::npos) << "wanted: " << e << "\n" << m.output;
  EXPECT_EQ(m.output.find("terminate called"), std::string::npos) << m.output;
}

std::string qalign_cmd() { return "'" + test::qalign_binary() + "'"; }

// The pids of processes whose command line holds `token`.
std::vector<int> processes_with(const std::string& token) {
  std::vector<int> found;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const auto name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "cmdline");
    const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (all.find(token) != std::string::npos) found.push_back(std::stoi(name));
  }
  return found;
}

// A port another program holds: listening, connections completed by the kernel, never answered.
class HeldPort {
 public:
  HeldPort() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd_, 16) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
      throw std::runtime_error("cannot hold a port");
    port_ = ntohs(addr.sin_port);
  }
  ~HeldPort() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1, port_ = 0;
};

// `qalign train` as rank 1 of 2, rank 0's store expected at 127.0.0.1:port.
std::string rank_one_train(int port, const test::ScratchDir& d, const std::string& args) {
  return "RANK=1 WORLD_SIZE=2 LOCAL_RANK=0 LOCAL_WORLD_SIZE=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=" +
         std::to_string(port) + " OMP_NUM_THREADS=1 exec " + qalign_cmd() + " train --config " + test::kTinyRecipe +
         " max_steps=1 dataloader_num_workers=0 gradient_checkpointing=false output_dir=" + d.file("run") + " " + args;
}

}  // namespace bad_launch_inputs

using namespace bad_launch_inputs;

// --- qalign launch: bounds, and cleaning up what it started -------------------------------------

TEST(LaunchBounds, WorkersPerNodeAndNodesHaveAStatedMaximum) {
  expect_ends(test::run_qalign_measured("launch --nproc-per-node 5000 -- true"), 105,
              {"--nproc-per-node: must be at most 1024, got 5000"});
  expect_ends(test::run_qalign_measured("launch --nproc-per-node 2 --nnodes 100000 -- true"), 105,
              {"--nnodes: must be at most 65536, got 100000"});
  expect_ends(test::run_qalign_measured("launch --nproc-per-node 1 --grace 1000000000 -- true"), 105,
              {"--grace: must be at most 86400, got 1000000000"});
}

TEST(LaunchBounds, MoreWorkersThanUlimitAllowsAreRefusedBeforeAnyStarts) {
  const std::string token = "66.0" + std::to_string(::getpid());
  const auto m = test::run_shell_measured("ulimit -n 64 && exec " + qalign_cmd() +
                                          " launch --nproc-per-node 100 -- sleep " + token);
  expect_ends(m, 1, {"--nproc-per-node: 100 workers need", "`ulimit -n` allows 64"});
  EXPECT_EQ(m.output.find("launched"), std::string::npos) << m.output;
  EXPECT_TRUE(processes_with(token).empty());
}

// Starting the workers fails part-way (here fork, past another user's `ulimit -u`): those started
// are killed and reaped, and the message says how many started and what failed.
TEST(LaunchCleanup, WorkersStartedBeforeAFailedStartAreKilled) {
  if (::geteuid() != 0 || ::access("/usr/bin/setpriv", X_OK) != 0)
    GTEST_SKIP() << "needs root and setpriv, to run the launcher as a user whose process count is known";
  const std::string as_nobody = "setpriv --reuid=65534 --regid=65534 --clear-groups ";
  std::string reach;
  if (test::run_command(as_nobody + "test -x " + qalign_cmd(), &reach) != 0)
    GTEST_SKIP() << "uid 65534 cannot reach " << qalign_cmd() << " (a checkout under a private folder, e.g. mktemp -d)";
  const std::string token = "77.0" + std::to_string(::getpid());
  const auto m = test::run_shell_measured("exec " + as_nobody + "bash -c 'ulimit -u 12 && exec " + qalign_cmd() +
                                          " launch --nproc-per-node 40 -- sleep " + token + "'");
  expect_ends(m, 1,
              {"--nproc-per-node: started ", " of 40 workers, then: launch: rank ", "cannot start its process (fork)",
               "were killed"});
  EXPECT_TRUE(processes_with(token).empty()) << m.output;
}

// --- the rank to blame ---------------------------------------------------------------------------

TEST(LaunchBlame, AStoppedRankIsNamedNotTheOneThatWaitedForIt) {
  const auto m = test::run_qalign_measured(
      "launch --nproc-per-node 2 --grace 2 -- sh -c 'if [ $RANK = 1 ]; then echo before; kill -STOP $$; fi; sleep 1; "
      "exit 1'",
      60);
  expect_ends(m, 1,
              {"rank 1 (pid ", ") was stopped by signal 19", "rank 1 failed: it was stopped by signal 19",
               "never continued; rank 0 (pid ", ") exited with code 1 waiting for it", "Its last lines:\n  before"});
}

TEST(LaunchBlame, ARankThatGaveUpOnItsPeersNamesThoseStillRunning) {
  const auto m = test::run_qalign_measured(
      "launch --nproc-per-node 3 --grace 2 -- sh -c 'if [ $RANK = 2 ]; then sleep 100; fi; if [ $RANK = 0 ]; then "
      "sleep 0.5; echo \"" +
          std::string(distributed::kPeerLostPhrase) + " ddp_timeout\"; exit 1; fi; sleep 100'",
      60);
  expect_ends(m, 1,
              {"rank 0 failed: it exited with code 1; it gave up waiting for its peers while rank(s) 1, 2 still ran"});
}

// --- rendezvous bounded by rendezvous_timeout, naming the address -----------------------------------

TEST(Rendezvous, APortHeldByAnotherProgramEndsAtTheTimeoutNamingIt) {
  test::ScratchDir d("qalign-rdv");
  const HeldPort held;
  const auto m = test::run_shell_measured(rank_one_train(held.port(), d, "rendezvous_timeout=3"));
  const auto where = "127.0.0.1:" + std::to_string(held.port());
  expect_ends(m, 1,
              {"rank 1 of 2: something accepts connections at " + where, "within 3 s (rendezvous_timeout)",
               "another program may hold MASTER_PORT " + std::to_string(held.port())});
  EXPECT_GE(m.seconds, 3.0) << m.output;
}

// Joining never waits longer than a collective would: a ddp_timeout shorter than
// rendezvous_timeout bounds it, and is the key named.
TEST(Rendezvous, AShorterDdpTimeoutBoundsItAndIsNamed) {
  test::ScratchDir d("qalign-rdv");
  const HeldPort held;
  const auto m = test::run_shell_measured(rank_one_train(held.port(), d, "ddp_timeout=2"));
  expect_ends(
      m, 1, {"something accepts connections at 127.0.0.1:" + std::to_string(held.port()), "within 2 s (ddp_timeout)"});
  EXPECT_GE(m.seconds, 2.0) << m.output;
}

TEST(Rendezvous, NoStoreAtTheAddressEndsAtTheTimeoutNamingIt) {
  test::ScratchDir d("qalign-rdv");
  const int port = test::free_port();
  const auto m = test::run_shell_measured(rank_one_train(port, d, "rendezvous_timeout=2"));
  expect_ends(m, 1,
              {"rank 1 of 2: rank 0's store at 127.0.0.1:" + std::to_string(port) +
                   " did not come up within 2 s (rendezvous_timeout)",
               "is rank 0 running"});
  EXPECT_GE(m.seconds, 2.0) << m.output;
}

TEST(Rendezvous, RankZeroAloneEndsAtTheTimeoutNamingTheAddress) {
  test::ScratchDir d("qalign-rdv");
  const int port = test::free_port();
  auto script = rank_one_train(port, d, "rendezvous_timeout=2");
  script.replace(script.find("RANK=1"), 6, "RANK=0");
  const auto m = test::run_shell_measured(script);
  expect_ends(
      m, 1,
      {"rank 0 of 2 could not join at 127.0.0.1:" + std::to_string(port) + " (waiting at most 2 s, rendezvous_timeout)",
       "1/2 clients joined"});
}

// The whole job on a held port: rank 0 cannot listen there and says so; the launcher stops rank 1,
// which was waiting on the port's holder, at once.
TEST(Rendezvous, ALaunchOnAHeldPortNamesItAndEnds) {
  test::ScratchDir d("qalign-rdv");
  const HeldPort held;
  const auto m = test::run_shell_measured(
      "OMP_NUM_THREADS=1 exec " + qalign_cmd() + " launch --nproc-per-node 2 --master-port " +
      std::to_string(held.port()) + " -- " + qalign_cmd() + " train --config " + test::kTinyRecipe +
      " max_steps=1 dataloader_num_workers=0 gradient_checkpointing=false output_dir=" + d.file("run"));
  expect_ends(m, 1,
              {"rank 0 of 2 could not join at 127.0.0.1:" + std::to_string(held.port()), "EADDRINUSE",
               "rank 0 failed: it exited with code 1"});
}

// --- timeouts and sizes past what their types hold ---------------------------------------------

TEST(TimeoutBounds, TimeoutsPastAWeekAreRefusedNamingTheKey) {
  for (const std::string key : {"ddp_timeout", "rendezvous_timeout"}) {
    test::ScratchDir d("qalign-timeout");
    expect_ends(test::run_qalign_measured("train --config " + test::kTinyRecipe + " output_dir=" + d.file("run") + " " +
                                          key + "=9223372036854775807"),
                1, {key + ": expected 1 to 604800 seconds (a week), got 9223372036854775807"});
    EXPECT_FALSE(fs::exists(d.file("run")));
  }
  const auto c = config::load_train_config(test::fixture("train/tiny_recipe.yaml"),
                                           {"ddp_timeout=604800", "rendezvous_timeout=1"});
  EXPECT_EQ(c.ddp_timeout, config::kMaxTimeoutSeconds);
  EXPECT_EQ(config::TrainConfig{}.rendezvous_timeout, 600);
}

TEST(PlanBounds, WorldSizesPastTheLaunchersAreRefused) {
  const std::string plan = "plan --config configs/onealign.yaml --preset tiny ";
  const auto m = test::run_qalign_measured(plan + "--nproc-per-node 1e6 --nnodes 1e6");
  EXPECT_NE(m.exit_code, 0) << m.output;
  EXPECT_NE(m.output.find("--nproc-per-node"), std::string::npos) << m.output;
  EXPECT_NE(m.output.find("1e6"), std::string::npos) << m.output;
  expect_ends(test::run_qalign_measured(plan + "--nproc-per-node 8 --nnodes 1000000"), 105,
              {"--nnodes: must be at most 65536, got 1000000"});
  // The largest job: sizes per rank stay positive, nothing wraps.
  const auto most = test::run_qalign_measured(plan + "--nproc-per-node 1024 --nnodes 65536 --json");
  ASSERT_EQ(most.exit_code, 0) << most.output;
  const auto j = nlohmann::json::parse(most.output.substr(most.output.find('{')));
  EXPECT_GT(j["device_per_rank"]["total"].get<int64_t>(), 0) << most.output;
  EXPECT_GE(j["device_per_rank"]["optimizer"].get<int64_t>(), 0) << most.output;
}

TEST(ByteSizes, OnlyAWholeNumberWithAUnitIsASize) {
  const std::string plan = "plan --config configs/onealign.yaml --preset tiny --nproc-per-node 1 --gpu-memory ";
  for (const std::string bad : {"1.2.3GB", "1.5GB", ".5GB", "12 GB", "-1GB", "0GiB"}) {
    SCOPED_TRACE(bad);
    expect_ends(test::run_qalign_measured(plan + "'" + bad + "'"), 1, {"--gpu-memory: " + bad + ": "});
  }
  expect_ends(test::run_qalign_measured(plan + "9300000000GB"), 1, {"--gpu-memory: 9300000000GB: too large"});
  expect_ends(test::run_qalign_measured(plan + "99999999999999999999"), 1,
              {"--gpu-memory: 99999999999999999999: too large"});
  EXPECT_EQ(test::run_qalign_measured(plan + "80GiB").exit_code, 0);
}

// --- bench data ------------------------------------------------------------------------------------

TEST(BenchDataBounds, WorkerCountsPastTheMachineAreRefusedAndLeaveNoFolder) {
  const auto folders = [] {
    size_t n = 0;
    for (const auto& e : fs::directory_iterator(fs::temp_directory_path()))
      n += e.path().filename().string().rfind("qalign-bench-data-", 0) == 0;
    return n;
  };
  const auto before = folders();
  expect_ends(test::run_qalign_measured("bench data --threads 1,100"), 1, {"--threads: 100: expected 1 to "});
  expect_ends(test::run_qalign_measured("bench data --threads 0"), 1, {"--threads: 0: expected 1 to "});
  expect_ends(test::run_qalign_measured("bench data --threads 1 --images-per-thread 0"), 1,
              {"--images-per-thread: 0: expected 1 to 100000"});
  EXPECT_EQ(folders(), before);
}
