// Data-parallel training on c10d (Gloo, CPU processes): the launcher environment, the
// distributed sampler, N processes x batch B against 1 process x batch N·B step for step (ZeRO
// stages 0-2, with the memory each rank reports), checkpoints resharded from N to M processes, a
// killed worker, and SIGTERM leaving a checkpoint that resumes bitwise.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "data/sampler.h"
#include "qalign/base/error.h"
#include "qalign/distributed/process_group.h"
#include "qalign/io/safetensors.h"
#include "tests/support/fixtures.h"

using namespace qalign;
namespace fs = std::filesystem;

namespace {

distributed::LaunchEnv env_of(const std::map<std::string, std::string>& vars) {
  return distributed::read_launch_env([&](const char* name) -> const char* {
    const auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  });
}

TEST(LaunchEnv, Torchrun) {
  const auto e = env_of({{"RANK", "3"},
                         {"WORLD_SIZE", "8"},
                         {"LOCAL_RANK", "1"},
                         {"LOCAL_WORLD_SIZE", "2"},
                         {"MASTER_ADDR", "node7"},
                         {"MASTER_PORT", "1234"}});
  EXPECT_EQ(e.launcher, "torchrun");
  EXPECT_EQ(e.rank, 3);
  EXPECT_EQ(e.world_size, 8);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.local_world_size, 2);
  EXPECT_EQ(e.master_addr, "node7");
  EXPECT_EQ(e.master_port, 1234);
}

TEST(LaunchEnv, Slurm) {
  const auto e = env_of({{"SLURM_PROCID", "5"},
                         {"SLURM_NTASKS", "8"},
                         {"SLURM_LOCALID", "1"},
                         {"SLURM_TASKS_PER_NODE", "4(x2)"},
                         {"SLURM_JOB_NODELIST", "gpu[03-04,09],login1"}});
  EXPECT_EQ(e.launcher, "slurm");
  EXPECT_EQ(e.rank, 5);
  EXPECT_EQ(e.world_size, 8);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.local_world_size, 4);
  EXPECT_EQ(e.master_addr, "gpu03");
  EXPECT_EQ(e.master_port, 29500);
  EXPECT_EQ(distributed::first_slurm_host("a1,b2"), "a1");
  EXPECT_EQ(distributed::first_slurm_host("solo"), "solo");
  EXPECT_EQ(distributed::first_slurm_host("n[7,9]"), "n7");
}

// SLURM with --gpus-per-task (or CUDA_VISIBLE_DEVICES set per process): each task sees one GPU,
// whatever its local rank, and uses it; with every GPU visible, rank r takes cuda:r.
TEST(LaunchEnv, OneVisibleGpuPerTaskIsCudaZeroWhateverTheLocalRank) {
  const auto e = env_of({{"SLURM_PROCID", "3"},
                         {"SLURM_NTASKS", "4"},
                         {"SLURM_LOCALID", "3"},
                         {"SLURM_TASKS_PER_NODE", "4"},
                         {"SLURM_JOB_NODELIST", "gpu01"}});
  EXPECT_EQ(distributed::local_cuda_index(e, 1), 0);
  EXPECT_EQ(distributed::local_cuda_index(e, 4), 3);
  EXPECT_NE(
      test::error_of([&] { distributed::local_cuda_index(e, 2); }).find("LOCAL_RANK: 3 but this process sees 2 GPUs"),
      std::string::npos);
}

// ddp_backend: auto follows the device the model trains on, not whether the machine has a GPU.
TEST(LaunchEnv, AutoBackendFollowsTheDevice) {
  EXPECT_EQ(distributed::resolve_backend("auto", torch::kCPU), "gloo");
  EXPECT_EQ(distributed::resolve_backend("auto", torch::Device(torch::kCUDA, 0)), "nccl");
  EXPECT_EQ(distributed::resolve_backend("gloo", torch::Device(torch::kCUDA, 0)), "gloo");
  EXPECT_EQ(distributed::resolve_backend("nccl", torch::kCPU), "nccl");
}

TEST(LaunchEnv, OpenMpiAndNone) {
  const auto e = env_of({{"OMPI_COMM_WORLD_RANK", "2"},
                         {"OMPI_COMM_WORLD_SIZE", "4"},
                         {"OMPI_COMM_WORLD_LOCAL_RANK", "0"},
                         {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"},
                         {"MASTER_ADDR", "10.0.0.1"}});
  EXPECT_EQ(e.launcher, "mpi");
  EXPECT_EQ(e.rank, 2);
  EXPECT_EQ(e.world_size, 4);
  EXPECT_EQ(e.local_world_size, 2);
  EXPECT_EQ(e.master_addr, "10.0.0.1");
  const auto none = env_of({});
  EXPECT_EQ(none.launcher, "none");
  EXPECT_EQ(none.world_size, 1);
}

TEST(LaunchEnv, MalformedValuesAreErrors) {
  EXPECT_THROW(env_of({{"RANK", "x"}, {"WORLD_SIZE", "2"}}), Error);
  EXPECT_THROW(env_of({{"RANK", "2"}, {"WORLD_SIZE", "2"}}), Error);
}

TEST(DistributedSampler, RanksSplitTheGlobalBatchesWithoutOverlap) {
  std::vector<int64_t> order(11);
  for (int64_t i = 0; i < 11; ++i) order[i] = 100 + (i * 7) % 11;
  const int64_t batch = 2, ranks = 3;
  std::vector<std::vector<int64_t>> shares;
  for (int64_t r = 0; r < ranks; ++r) shares.push_back(data::rank_share(order, batch, r, ranks));
  // Round k of the ranks together is the k-th batch of one process with batch ranks · batch.
  std::vector<int64_t> joined;
  for (size_t k = 0; k * batch < shares[0].size(); ++k)
    for (const auto& s : shares)
      for (size_t i = k * batch; i < std::min(s.size(), (k + 1) * batch); ++i) joined.push_back(s[i]);
  EXPECT_EQ(joined, order);
  EXPECT_EQ(shares[0].size(), 4u);
  EXPECT_EQ(shares[2].size(), 3u);
}

// Where each rank resumes after all ranks together took the first `taken` samples of the order:
// counted here from rank_share itself, for every cut of an 11-sample order.
TEST(DistributedSampler, RankPositionCountsTheShareAlreadyTaken) {
  std::vector<int64_t> order(11);
  for (int64_t i = 0; i < 11; ++i) order[i] = i;
  for (const int64_t ranks : {1, 2, 3, 4})
    for (const int64_t batch : {1, 2, 3})
      for (int64_t r = 0; r < ranks; ++r) {
        const auto share = data::rank_share(order, batch, r, ranks);
        for (int64_t taken = 0; taken <= 11; ++taken) {
          const auto expected = std::count_if(share.begin(), share.end(), [&](int64_t i) { return i < taken; });
          EXPECT_EQ(data::rank_position(taken, batch, r, ranks), expected)
              << "ranks " << ranks << ", batch " << batch << ", rank " << r << ", taken " << taken;
        }
      }
}

// --- runs ---------------------------------------------------------------------------------

// Shuffled, without length grouping (whose chunks depend on the batch size), with clipping,
// weight decay, cosine warm-up; five samples, so epochs end in a partial batch. Buckets of 0.1 MB
// cut the tiny model (243k parameters) into ten, so ZeRO's chunks split parameters.
const std::string kCommon =
    "group_by_modality_length=false gradient_checkpointing=false dataloader_num_workers=1 save_steps=1000 "
    "ddp_bucket_cap_mb=0.1 ";

// One thread per process: OpenMP threads spinning on cores that other processes (the other
// worker, a compiler) hold slow a run tenfold. MKL on AVX2, so the rounding the comparisons with
// one process tolerate is the same on CPUs with and without AVX-512: on an AVX-512 machine
// (2026-12-04) Zero3.MixedTextAndImageBatchesEqualOneProcess measured 1.04e-5 relative
// (visual_fc.weight) with MKL's AVX-512 kernels, 5.3e-6 with its AVX2 ones. (ATen's own kernels
// cannot be pinned so: ATEN_CPU_CAPABILITY=avx2 breaks its bfloat16 matmul on such a CPU.)
std::string in_repo(const std::string& cmd) {
  return "cd '" + test::source_dir() + "' && export OMP_NUM_THREADS=1 MKL_ENABLE_INSTRUCTIONS=AVX2 && " + cmd;
}

std::string train_cmd(const std::string& args) {
  return "'" + test::qalign_binary() + "' train --config " + test::kTinyRecipe + " " + kCommon + args;
}

std::string launch_cmd(int nproc, const std::string& args, const std::string& launcher_args = "") {
  return "'" + test::qalign_binary() + "' launch --nproc-per-node " + std::to_string(nproc) + " --master-port " +
         std::to_string(test::free_port()) + " " + launcher_args + " -- " + train_cmd(args);
}

int run_in_repo(const std::string& cmd, std::string* out) {
  const int rc = test::run_command(in_repo(cmd), out);
  if (rc != 0) std::cerr << *out;
  return rc;
}

std::vector<double> losses(const std::string& dir) {
  std::vector<double> out;
  std::ifstream in(dir + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line)["loss"].get<double>());
  return out;
}

io::StateDict weights(const std::string& dir) {
  return io::SafetensorsFile::open(dir + "/model.safetensors")->load_all();
}

// Attention key biases get an exactly zero gradient (softmax ignores a shift shared by all keys),
// so what they receive is rounding noise, which AdamW scales up to steps of ±lr: any change of
// summation order moves them by ~1e-4 of their size in 20 steps. Measured: one process with 1
// and with 2 threads differs there by 5e-4 relative, elsewhere by 2e-7.
bool noise_only(const std::string& name) {
  const auto ends_with = [&](const std::string& suffix) {
    return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return ends_with("key.bias") || ends_with("query_key_value.bias");
}

struct WeightDiff {
  double max_relative = 0;  // max over tensors (but noise_only ones) of max |a - b| / max |b|
  double global = 0;        // |a - b| / |b| over all weights, noise_only ones included
};

WeightDiff weight_diff(const io::StateDict& a, const io::StateDict& b) {
  WeightDiff d;
  EXPECT_EQ(a.size(), b.size());
  double num = 0, den = 0;
  for (const auto& [name, t] : b) {
    const auto x = a.at(name).to(torch::kFloat64), y = t.to(torch::kFloat64);
    num += (x - y).square().sum().item<double>();
    den += y.square().sum().item<double>();
    if (noise_only(name)) continue;
    const double scale = std::max(y.abs().max().item<double>(), 1e-12);
    d.max_relative = std::max(d.max_relative, (x - y).abs().max().item<double>() / scale);
  }
  d.global = std::sqrt(num / den);
  return d;
}

// The trainable parameter count a run logs ("... (P parameters) ...").
int64_t logged_parameters(const std::string& log) {
  const auto end = log.find(" parameters) on ");
  const auto begin = log.rfind('(', end);
  if (end == std::string::npos || begin == std::string::npos) return 0;
  return std::stoll(log.substr(begin + 1, end - begin - 1));
}

// The per-rank memory report of a run's first metrics line.
nlohmann::json memory_report(const std::string& dir) {
  std::ifstream in(dir + "/metrics.jsonl");
  std::string line;
  std::getline(in, line);
  return nlohmann::json::parse(line).value("memory_report", nlohmann::json());
}

// What the ranks of a ZeRO run hold, counted from their tensors: float32 masters and AdamW's two
// moments for 1/N of the P parameters each, 12·P/N bytes; at stages 2 and 3 no rank holds a
// float32 buffer of the whole gradient (4·P), nor of a whole unit, only its 1/N shard and two
// buckets in transit. At stage 3 the masters are the trained parameters' only values, unless
// offloaded (then the device keeps its own chunks, float32 here).
void expect_sharded_memory(const nlohmann::json& report, int n, int64_t parameters, int stage, bool offload) {
  ASSERT_TRUE(report.is_array()) << report;
  ASSERT_EQ(report.size(), static_cast<size_t>(n)) << report;
  const double shard = 12.0 * static_cast<double>(parameters) / n;
  for (const auto& r : report) {
    SCOPED_TRACE(r.dump());
    const double held = r["masters"].get<double>() + r["optimizer"].get<double>();
    EXPECT_NEAR(held, shard, 0.01 * shard);
    const double gradients = r["gradients"].get<double>(), full = 4.0 * static_cast<double>(parameters);
    if (stage == 3 && offload)  // float32 here: 4 bytes of each parameter's 1/N
      EXPECT_NEAR(r["parameters"].get<double>(), 4.0 * static_cast<double>(parameters) / n,
                  0.01 * 4.0 * parameters / n);
    if (stage == 3 && !offload) EXPECT_EQ(r["parameters"].get<double>(), 0);
    if (stage == 3)
      EXPECT_LE(r["gathered_units_peak"].get<int64_t>(), 2);  // zero3_prefetch_blocks 1, plus the one computing
    if (stage >= 2) {
      EXPECT_LT(gradients, full);
      EXPECT_LE(gradients, full / n + 2 * 2 * 0.1 * (1 << 20) + 1024);  // shard + two 0.1 MB buckets sent and received
    }
    EXPECT_GE(gradients, full / n);
    if (stage < 3 || offload) EXPECT_GT(r["parameters"].get<double>(), 0);
    EXPECT_GT(r["peak_allocated"].get<double>(), 0);
  }
}

// n processes x batch 1 against 1 process x batch n, 20 steps each.
void expect_equal_to_one_process(const std::string& extra, int n = 2, int stage = 0) {
  test::ScratchDir one("qalign_dp1"), two("qalign_dp2");
  std::string out;
  ASSERT_EQ(run_in_repo(train_cmd("max_steps=20 per_device_train_batch_size=" + std::to_string(n) +
                                  " output_dir=" + one.path() + " zero_stage=" + std::to_string(stage) + " " + extra),
                        &out),
            0);
  ASSERT_EQ(run_in_repo(launch_cmd(n, "max_steps=20 per_device_train_batch_size=1 output_dir=" + two.path() +
                                          " zero_stage=" + std::to_string(stage) + " " + extra),
                        &out),
            0);
  EXPECT_NE(out.find("[rank " + std::to_string(n - 1) + "]"), std::string::npos) << out;
  if (stage > 0)
    expect_sharded_memory(memory_report(two.path()), n, logged_parameters(out), stage,
                          extra.find("offload_optimizer=cpu") != std::string::npos);
  // Each line: the wait for input is part of the step's time.
  std::ifstream lines(two.path() + "/metrics.jsonl");
  for (std::string line; std::getline(lines, line);) {
    const auto j = nlohmann::json::parse(line);
    EXPECT_GE(j["input_wait_ms_per_step"].get<double>(), 0);
    EXPECT_LE(j["input_wait_ms_per_step"].get<double>(), j["ms_per_step"].get<double>());
    EXPECT_EQ(j["memory"].size(), static_cast<size_t>(n));
  }
  const auto l1 = losses(one.path()), l2 = losses(two.path());
  ASSERT_EQ(l1.size(), 20u);
  ASSERT_EQ(l2.size(), 20u);
  double worst_loss = 0;
  for (size_t i = 0; i < l1.size(); ++i) {
    worst_loss = std::max(worst_loss, std::abs(l1[i] - l2[i]) / std::abs(l1[i]));
    EXPECT_NEAR(l2[i], l1[i], 1e-5 * std::abs(l1[i])) << "step " << i + 1;
  }
  const auto w = weight_diff(weights(two.path()), weights(one.path()));
  EXPECT_LE(w.max_relative, 1e-5);
  EXPECT_LE(w.global, 1e-5);
  std::cout << "max relative loss difference " << worst_loss << ", max relative weight difference " << w.max_relative
            << " (all weights: " << w.global << ")\n";
}

TEST(DataParallel, TwoProcessesEqualOneWithTheGlobalBatch) {
  expect_equal_to_one_process("gradient_accumulation_steps=1");
}
TEST(DataParallel, TwoProcessesEqualOneWithAccumulation) {
  expect_equal_to_one_process("gradient_accumulation_steps=2");
}
TEST(DataParallel, FourProcessesEqualOneWithAccumulation) {
  expect_equal_to_one_process("gradient_accumulation_steps=2", 4);
}
TEST(Zero1, TwoProcessesEqualOneWithTheGlobalBatch) {
  expect_equal_to_one_process("gradient_accumulation_steps=1", 2, 1);
}
TEST(Zero1, TwoProcessesEqualOneWithAccumulation) {
  expect_equal_to_one_process("gradient_accumulation_steps=2", 2, 1);
}
TEST(Zero1, FourProcessesEqualOneWithAccumulation) {
  expect_equal_to_one_process("gradient_accumulation_steps=2", 4, 1);
}
TEST(Zero2, TwoProcessesEqualOneWithTheGlobalBatch) {
  expect_equal_to_one_process("gradient_accumulation_steps=1", 2, 2);
}
// With activation checkpointing too: gradients then become ready inside the re-run blocks.
TEST(Zero2, TwoProcessesEqualOneWithAccumulation) {
  expect_equal_to_one_process("gradient_accumulation_steps=2 gradient_checkpointing=true", 2, 2);
}
TEST(Zero2, FourProcessesEqualOneWithAccumulation) {
  expect_equal_to_one_process("gradient_accumulation_steps=2", 4, 2);
}
TEST(Zero2, OffloadTwoProcessesEqualOne) {
  expect_equal_to_one_process("gradient_accumulation_steps=2 offload_optimizer=cpu", 2, 2);
}
// ZeRO-3: parameters sharded too, every unit gathered around its forward and its recomputation.
TEST(Zero3, TwoProcessesEqualOneWithAccumulation) {
  expect_equal_to_one_process("gradient_accumulation_steps=2", 2, 3);
}
TEST(Zero3, FourProcessesEqualOneWithAccumulation) {
  expect_equal_to_one_process("gradient_accumulation_steps=2", 4, 3);
}
TEST(Zero3, OffloadTwoProcessesEqualOne) {
  expect_equal_to_one_process("gradient_accumulation_steps=2 offload_optimizer=cpu", 2, 3);
}
TEST(Zero3, OffloadFourProcessesEqualOne) {
  expect_equal_to_one_process("gradient_accumulation_steps=2 offload_optimizer=cpu", 4, 3);
}

// Every parameter trained in bf16: a rank keeps 16·P/N bytes of state, its parameters' values only
// in the float32 masters (2·P/N more in bf16 with the optimizer offloaded), and a forward never
// holds more than zero3_prefetch_blocks + 1 units gathered (counted by the gather code).
TEST(Zero3, ParametersShardedAndGathersBoundedByThePrefetch) {
  for (const auto& [prefetch, offload] : {std::pair{0, false}, std::pair{2, true}}) {
    SCOPED_TRACE(prefetch);
    test::ScratchDir dir("qalign_zero3_memory");
    std::string out;
    ASSERT_EQ(
        run_in_repo(
            launch_cmd(2, "max_steps=2 per_device_train_batch_size=1 bf16=true zero_stage=3 zero3_prefetch_blocks=" +
                              std::to_string(prefetch) + (offload ? " offload_optimizer=cpu" : "") +
                              " output_dir=" + dir.path()),
            &out),
        0);
    const auto report = memory_report(dir.path());
    ASSERT_EQ(report.size(), 2u) << report;
    const double parameters = static_cast<double>(logged_parameters(out));
    for (const auto& r : report) {
      SCOPED_TRACE(r.dump());
      EXPECT_NEAR(r["parameters"].get<double>(), offload ? 2.0 * parameters / 2 : 0.0, 0.01 * parameters);
      EXPECT_EQ(r["gathered_units_peak"].get<int64_t>(), prefetch + 1);
      // Masters and moments 12, the float32 gradient shard 4 plus one 0.1 MB bucket filling and
      // one in flight (sent and received).
      EXPECT_NEAR(r["masters"].get<double>() + r["optimizer"].get<double>(), 12.0 * parameters / 2,
                  0.01 * 12.0 * parameters / 2);
      EXPECT_GE(r["gradients"].get<double>(), 4.0 * parameters / 2);
      EXPECT_LE(r["gradients"].get<double>(), 4.0 * parameters / 2 + 3 * 0.1 * (1 << 20) + 1024);
    }
  }
}

// One process: nothing to shard; the run says so once and trains as without ZeRO.
TEST(Zero3, OneProcessSaysThereIsNothingToShard) {
  test::ScratchDir dir("qalign_zero3_one");
  std::string out;
  ASSERT_EQ(run_in_repo(train_cmd("max_steps=1 zero_stage=3 output_dir=" + dir.path()), &out), 0);
  EXPECT_NE(out.find("zero_stage 3 in one process: nothing to shard"), std::string::npos) << out;
}

// LoRA under ZeRO: the adapters and the abstractor are what is trained and sharded (at stage 3
// the frozen base is sharded too); the adapter folders of 2 processes x batch 1 and 1 process x
// batch 2 agree.
void expect_lora_equal_to_one_process(int stage) {
  test::ScratchDir one("qalign_lora1"), two("qalign_lora2");
  const std::string args =
      "max_steps=10 gradient_accumulation_steps=2 lora_enable=true lora_r=4 lora_alpha=8 lora_dropout=0 ";
  std::string out;
  ASSERT_EQ(run_in_repo(train_cmd(args + "per_device_train_batch_size=2 output_dir=" + one.path()), &out), 0);
  ASSERT_EQ(run_in_repo(launch_cmd(2, args + "zero_stage=" + std::to_string(stage) +
                                          " per_device_train_batch_size=1 output_dir=" + two.path()),
                        &out),
            0);
  const auto l1 = losses(one.path()), l2 = losses(two.path());
  ASSERT_EQ(l1.size(), 10u);
  ASSERT_EQ(l2.size(), 10u);
  for (size_t i = 0; i < l1.size(); ++i) EXPECT_NEAR(l2[i], l1[i], 1e-5 * std::abs(l1[i])) << "step " << i + 1;
  const auto adapters = [](const std::string& dir) {
    return io::SafetensorsFile::open(dir + "/adapter_model.safetensors")->load_all();
  };
  const auto w = weight_diff(adapters(two.path()), adapters(one.path()));
  EXPECT_LE(w.max_relative, 1e-5);
}

TEST(Zero2, LoraTwoProcessesEqualOne) { expect_lora_equal_to_one_process(2); }
TEST(Zero3, LoraTwoProcessesEqualOne) { expect_lora_equal_to_one_process(3); }

// A ZeRO checkpoint of 2 processes x batch 2 resumed on 1 x 4 and on 4 x 1: the optimizer
// shards are cut anew and each rank's place in the epoch follows from the samples taken. Step 4
// is an epoch's tail (5 samples), which one rank of the four trains alone (at stage 3 the three
// others still gather and reduce with it).
void expect_reshard(int stage) {
  test::ScratchDir dir("qalign_zero_reshard");
  const std::string args =
      "zero_stage=" + std::to_string(stage) + " gradient_accumulation_steps=1 max_steps=6 save_steps=3 ";
  const auto full = dir.file("full"), checkpoint = full + "/checkpoint-3";
  std::string out;
  ASSERT_EQ(run_in_repo(launch_cmd(2, args + "per_device_train_batch_size=2 output_dir=" + full), &out), 0);
  ASSERT_TRUE(fs::exists(checkpoint + "/optimizer.rank1-of-2.safetensors"));
  const auto one = dir.file("one"), four = dir.file("four");
  ASSERT_EQ(run_in_repo(train_cmd(args + "per_device_train_batch_size=4 output_dir=" + one +
                                  " resume_from_checkpoint=" + checkpoint),
                        &out),
            0);
  EXPECT_NE(out.find("resharded"), std::string::npos) << out;
  ASSERT_EQ(run_in_repo(launch_cmd(4, args + "per_device_train_batch_size=1 output_dir=" + four +
                                          " resume_from_checkpoint=" + checkpoint),
                        &out),
            0);
  const auto reference = losses(full);
  ASSERT_EQ(reference.size(), 6u);
  for (const auto& resumed : {one, four}) {
    SCOPED_TRACE(resumed);
    const auto l = losses(resumed);
    ASSERT_EQ(l.size(), 3u);
    for (size_t i = 0; i < 3; ++i)
      EXPECT_NEAR(l[i], reference[i + 3], 1e-5 * std::abs(reference[i + 3])) << "step " << i + 4;
    const auto w = weight_diff(weights(resumed), weights(full));
    EXPECT_LE(w.max_relative, 1e-5);
    EXPECT_LE(w.global, 1e-5);
  }
  // Shards that do not cover the model: an error naming the missing file, nothing written.
  fs::remove(checkpoint + "/optimizer.rank1-of-2.safetensors");
  const auto refused = dir.file("refused");
  EXPECT_NE(run_in_repo(train_cmd(args + "per_device_train_batch_size=4 output_dir=" + refused +
                                  " resume_from_checkpoint=" + checkpoint),
                        &out),
            0);
  EXPECT_NE(out.find("optimizer.rank1-of-2.safetensors"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(refused + "/model.safetensors"));
}

TEST(Zero2, CheckpointResumesOnAnotherNumberOfProcesses) { expect_reshard(2); }
TEST(Zero3, CheckpointResumesOnAnotherNumberOfProcesses) { expect_reshard(3); }

void expect_bitwise_resume(int stage) {
  test::ScratchDir dir("qalign_zero_resume");
  const auto full = dir.file("full"), resumed = dir.file("resumed");
  const std::string args =
      "per_device_train_batch_size=1 zero_stage=" + std::to_string(stage) + " max_steps=8 save_steps=4 ";
  std::string out;
  ASSERT_EQ(run_in_repo(launch_cmd(2, args + "output_dir=" + full), &out), 0);
  const auto checkpoint = full + "/checkpoint-4";
  // Each rank's optimizer shard is in the checkpoint, and no whole optimizer state.
  EXPECT_TRUE(fs::exists(checkpoint + "/optimizer.rank0-of-2.safetensors"));
  EXPECT_TRUE(fs::exists(checkpoint + "/optimizer.rank1-of-2.safetensors"));
  EXPECT_FALSE(fs::exists(checkpoint + "/optimizer.safetensors"));
  ASSERT_EQ(run_in_repo(launch_cmd(2, args + "output_dir=" + resumed + " resume_from_checkpoint=" + checkpoint), &out),
            0);
  const auto a = weights(full), b = weights(resumed);
  for (const auto& [name, t] : a) EXPECT_TRUE(torch::equal(t, b.at(name))) << name;
  const auto la = losses(full), lb = losses(resumed);
  ASSERT_EQ(lb.size(), 4u);
  for (size_t i = 0; i < lb.size(); ++i) EXPECT_EQ(lb[i], la[i + 4]) << "step " << i + 5;
}

TEST(Zero2, ResumedRunContinuesBitwise) { expect_bitwise_resume(2); }
TEST(Zero3, ResumedRunContinuesBitwise) { expect_bitwise_resume(3); }

// The NCCL backend is built and linked; without a GPU, asking for it is a clear error.
TEST(ProcessGroupBackend, NcclWithoutGpuIsAClearError) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "a GPU is present: scripts/device_check_nccl.sh runs NCCL";
  test::ScratchDir dir("qalign_nccl");
  std::string out;
  const int rc = test::run_command(in_repo("RANK=0 WORLD_SIZE=1 MASTER_PORT=" + std::to_string(test::free_port()) +
                                           " " + train_cmd("max_steps=1 ddp_backend=nccl output_dir=" + dir.path())),
                                   &out);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("nccl needs CUDA"), std::string::npos) << out;
}

// A Gloo worker thread holds a finished work, and through it the views of the buffer it wrote, a
// moment past wait(): wait_and_release returns only once this caller's reference is the last, so
// that a gathered buffer dropped next is freed then (ZeRO-3 frees a unit and gathers the next).
// Two ranks on threads of this process, gathering in blocks as ZeRO-3 does on the CPU.
TEST(ProcessGroupBackend, GlooWorkLetsGoOfItsTensorsOnceWaitedAndReleased) {
  const auto port = std::to_string(test::free_port());
  std::atomic<int> held{0};
  const auto rank = [&](int r) {
    distributed::ProcessGroup group(env_of({{"RANK", std::to_string(r)}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", port}}),
                                    "gloo", std::chrono::seconds(60));
    for (int i = 0; i < 100; ++i) {
      auto out = torch::empty({2, 8, 1024});
      std::vector<c10::intrusive_ptr<c10d::Work>> works;
      for (int64_t b = 0; b < 8; ++b) {
        std::vector<torch::Tensor> inputs{torch::full({1024}, static_cast<float>(r + i))};
        std::vector<std::vector<torch::Tensor>> outputs{{out[0][b], out[1][b]}};
        works.push_back(group.backend().allgather(outputs, inputs));
      }
      for (auto& w : works) group.wait_and_release(w, "gather");
      if (out.storage().use_count() != 1) held += 1;
      EXPECT_EQ(out[1][7][0].item<float>(), static_cast<float>(1 + i));
    }
  };
  std::thread other(rank, 1);
  rank(0);
  other.join();
  EXPECT_EQ(held.load(), 0) << "times a gathered buffer was still held by a finished work";
}

// Evaluation during training splits the set across the ranks (2 items each, one a video) and
// gathers every score, so its metrics are those of `qalign eval` on the same weights in one
// process (up to the rounding of other batch compositions: no two items are alike, so no ties).
void expect_eval_shared(int stage) {
  test::ScratchDir dir("qalign_dpeval");
  const auto set = dir.file("fixture_set.json");
  std::ofstream(set) << R"([{"image": "img_wide.png", "gt_score": 3.5}, {"image": "img_tall.jpg", "gt_score": 1.25},
    {"image": "img_big.png", "gt_score": 4.0}, {"image": "video.avi", "gt_score": 2.0}])";
  std::string out;
  ASSERT_EQ(run_in_repo(launch_cmd(2, "zero_stage=" + std::to_string(stage) +
                                          " max_steps=2 save_steps=2 per_device_train_batch_size=1 eval_steps=2 "
                                          "per_device_eval_batch_size=2 eval_data_paths=" +
                                          set + " output_dir=" + dir.file("run")),
                        &out),
            0);
  nlohmann::json logged;
  std::ifstream in(dir.file("run/metrics.jsonl"));
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("eval_fixture_set_srcc")) logged = j;
  }
  ASSERT_FALSE(logged.is_null()) << out;
  EXPECT_EQ(logged["eval_fixture_set_n"], 4);
  ASSERT_EQ(run_in_repo("'" + test::qalign_binary() + "' eval --model " + dir.file("run/checkpoint-2") + " --data " +
                            set + " --image-folder tests/fixtures/qalign-tiny/inputs --out " + dir.file("eval"),
                        &out),
            0);
  const auto results = nlohmann::json::parse(std::ifstream(dir.file("eval/results.json")));
  EXPECT_EQ(results["fixture_set"]["n"], 4);
  EXPECT_NEAR(logged["eval_fixture_set_srcc"].get<double>(), results["fixture_set"]["srcc"].get<double>(), 1e-9);
  EXPECT_NEAR(logged["eval_fixture_set_plcc"].get<double>(), results["fixture_set"]["plcc"].get<double>(), 1e-5);
}

TEST(DataParallelEval, RanksShareTheSetAndAgreeWithOneProcess) { expect_eval_shared(2); }
// At stage 3 each rank scores its share with the whole model gathered.
TEST(DataParallelEval, ZeroThreeRanksShareTheSetAndAgreeWithOneProcess) { expect_eval_shared(3); }

// Text-only and image records mixed, so that in some micro-batches one rank runs the vision tower
// and the other does not: the ranks' gathers and reductions must still pair up (each walks the
// whole schedule).
TEST(Zero3, MixedTextAndImageBatchesEqualOneProcess) {
  test::ScratchDir dir("qalign_zero3_mixed");
  const auto data = dir.file("mixed.json");
  std::ofstream(data) << R"([
    {"id": "a->70", "image": "img_wide.png", "conversations": [{"from": "human", "value": "Rate this image.\n<|image|>"}, {"from": "gpt", "value": "The quality of the image is good."}]},
    {"id": "t1", "conversations": [{"from": "human", "value": "How is the weather described here?"}, {"from": "gpt", "value": "The quality of the image is poor."}]},
    {"id": "b->20", "image": "img_tall.jpg", "conversations": [{"from": "human", "value": "Rate this picture.\n<|image|>"}, {"from": "gpt", "value": "The quality of the image is bad."}]},
    {"id": "t2", "conversations": [{"from": "human", "value": "Say something about quality."}, {"from": "gpt", "value": "The quality of the image is fair."}]}])";
  const std::string args = "max_steps=8 gradient_accumulation_steps=2 data_path=" + data + " ";
  test::ScratchDir one("qalign_zero3_mixed1"), two("qalign_zero3_mixed2");
  std::string out;
  ASSERT_EQ(run_in_repo(train_cmd(args + "per_device_train_batch_size=2 output_dir=" + one.path()), &out), 0);
  ASSERT_EQ(
      run_in_repo(launch_cmd(2, args + "zero_stage=3 per_device_train_batch_size=1 output_dir=" + two.path()), &out),
      0);
  const auto l1 = losses(one.path()), l2 = losses(two.path());
  ASSERT_EQ(l1.size(), 8u);
  ASSERT_EQ(l2.size(), 8u);
  for (size_t i = 0; i < l1.size(); ++i) EXPECT_NEAR(l2[i], l1[i], 1e-5 * std::abs(l1[i])) << "step " << i + 1;
  const auto w = weight_diff(weights(two.path()), weights(one.path()));
  EXPECT_LE(w.max_relative, 1e-5);
}

// Through the command: two ranks with device: cpu and ddp_backend: auto join with Gloo.
TEST(TrainDevice, AutoBackendWithCpuDeviceJoinsWithGloo) {
  test::ScratchDir dir("qalign_auto_backend");
  std::string out;
  ASSERT_EQ(run_in_repo(launch_cmd(2, "max_steps=1 device=cpu ddp_backend=auto output_dir=" + dir.file("run")), &out),
            0);
  EXPECT_NE(out.find(" with gloo"), std::string::npos) << out;
}

// device: cuda on a machine without a GPU names the key, and the run writes nothing.
TEST(TrainDevice, CudaWithoutGpuIsAClearError) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "a GPU is present: scripts/device_check.sh trains on it";
  test::ScratchDir dir("qalign_nocuda");
  std::string out;
  const int rc = test::run_command(in_repo(train_cmd("max_steps=1 device=cuda output_dir=" + dir.file("run"))), &out);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("device: cuda asked for, but no GPU is available here"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(dir.file("run")));
}

// A launcher started in the background: its pid, output file and exit-code file.
struct Background {
  std::string log, rc;
  int pid = 0;
};

Background start(const std::string& cmd, const test::ScratchDir& dir) {
  Background b{dir.file("launch.log"), dir.file("launch.rc")};
  std::string out;
  // The subshell writes the launcher's exit code when it ends; its pid is the launcher's parent.
  const auto wrapped =
      in_repo("( " + cmd + " > '" + b.log + "' 2>&1; echo $? > '" + b.rc + "' ) > /dev/null 2>&1 & echo $!");
  EXPECT_EQ(test::run_command(wrapped, &out), 0);
  b.pid = std::stoi(out);
  return b;
}

// The pid of the worker with RANK=rank among the descendants of `root`.
// The first process below `root` (by parents) whose file `what` (environ, cmdline) holds every one
// of `needles`.
int descendant_pid(int root, const std::string& what, const std::vector<std::string>& needles) {
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const auto name = entry.path().filename().string();
    if (!std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    std::ifstream in(entry.path() / what);
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!std::all_of(needles.begin(), needles.end(),
                     [&](const std::string& n) { return all.find(n) != std::string::npos; }))
      continue;
    for (int pid = std::stoi(name); pid > 1;) {
      std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
      std::string s((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
      const auto close = s.rfind(')');
      if (close == std::string::npos) break;
      int ppid = 0;
      std::sscanf(s.c_str() + close + 2, "%*c %d", &ppid);
      if (ppid == root) return std::stoi(name);
      pid = ppid;
    }
  }
  return 0;
}

int worker_pid(int root, int rank) {
  return descendant_pid(root, "environ", {std::string("RANK=") + std::to_string(rank) + '\0', "LOCAL_WORLD_SIZE=2"});
}

// Waits until `done` holds, at most `seconds`.
template <typename F>
bool wait_for(F done, double seconds) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return done();
}

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(DataParallelFailure, KilledWorkerStopsTheLauncherNamingIt) {
  test::ScratchDir dir("qalign_dpkill");
  const auto run_dir = dir.file("run");
  const auto b =
      start(launch_cmd(2, "max_steps=100000 per_device_train_batch_size=1 zero_stage=0 output_dir=" + run_dir), dir);
  ASSERT_TRUE(wait_for([&] { return losses(run_dir).size() >= 2; }, 60)) << read_all(b.log);
  const int victim = worker_pid(b.pid, 1);
  ASSERT_GT(victim, 0);
  const auto killed = std::chrono::steady_clock::now();
  kill(victim, SIGKILL);
  ASSERT_TRUE(wait_for([&] { return fs::exists(b.rc) && !read_all(b.rc).empty(); }, 60)) << read_all(b.log);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
  EXPECT_LT(seconds, 60);
  EXPECT_NE(std::stoi(read_all(b.rc)), 0);
  const auto log = read_all(b.log);
  EXPECT_NE(log.find("rank 1 failed"), std::string::npos) << log;
  std::cout << "launcher exited " << seconds << " s after the kill\n";
}

TEST(DataParallelFailure, HungWorkerStopsTheOthersAfterTheTimeout) {
  test::ScratchDir dir("qalign_dphang");
  const auto run_dir = dir.file("run");
  const auto b = start(
      launch_cmd(2, "max_steps=100000 per_device_train_batch_size=1 zero_stage=0 ddp_timeout=5 output_dir=" + run_dir,
                 "--grace 3"),
      dir);
  ASSERT_TRUE(wait_for([&] { return losses(run_dir).size() >= 2; }, 60)) << read_all(b.log);
  const int victim = worker_pid(b.pid, 1);
  ASSERT_GT(victim, 0);
  const auto stopped = std::chrono::steady_clock::now();
  kill(victim, SIGSTOP);  // alive but silent, as a hung rank is
  ASSERT_TRUE(wait_for([&] { return fs::exists(b.rc) && !read_all(b.rc).empty(); }, 50)) << read_all(b.log);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - stopped).count();
  EXPECT_GE(seconds, 4);  // rank 0 waited for the timeout, not less
  EXPECT_LT(seconds, 30);
  EXPECT_NE(std::stoi(read_all(b.rc)), 0);
  const auto log = read_all(b.log);
  // The stopped rank is the one named, with what happened to it; rank 0's own lines say it waited.
  EXPECT_NE(log.find("rank 1 failed: it was stopped by signal 19"), std::string::npos) << log;
  EXPECT_NE(log.find("exited with code 1 waiting for it"), std::string::npos) << log;
  EXPECT_NE(log.find("ddp_timeout (5 s)"), std::string::npos) << log;
  std::cout << "launcher exited " << seconds << " s after rank 1 stopped\n";
}

// A user's Ctrl-C on a one-process run: a checkpoint at the step boundary, exit 128 + SIGINT.
TEST(TrainSignals, SigintLeavesACheckpointAndExitsAsUnfinished) {
  test::ScratchDir dir("qalign_sigint");
  const auto cut = dir.file("cut");
  const auto b = start(train_cmd("per_device_train_batch_size=1 max_steps=100000 output_dir=" + cut), dir);
  ASSERT_TRUE(wait_for([&] { return losses(cut).size() >= 2; }, 60)) << read_all(b.log);
  const int trainer = descendant_pid(b.pid, "cmdline", {"qalign", std::string("train") + '\0'});
  ASSERT_GT(trainer, 0);
  kill(trainer, SIGINT);
  ASSERT_TRUE(wait_for([&] { return fs::exists(b.rc) && !read_all(b.rc).empty(); }, 60)) << read_all(b.log);
  EXPECT_EQ(std::stoi(read_all(b.rc)), 128 + SIGINT) << read_all(b.log);
  const auto stopped = losses(cut).size();
  EXPECT_TRUE(fs::exists(cut + "/checkpoint-" + std::to_string(stopped) + "/model.safetensors")) << read_all(b.log);
  EXPECT_NE(read_all(b.log).find("stopped by SIGINT"), std::string::npos) << read_all(b.log);
}

TEST(DataParallelFailure, SigtermLeavesACheckpointThatResumesBitwise) {
  test::ScratchDir dir("qalign_dpterm");
  const auto full = dir.file("full"), cut = dir.file("cut");
  const std::string args = "per_device_train_batch_size=1 zero_stage=0 max_steps=12 ";
  std::string out;
  ASSERT_EQ(run_in_repo(launch_cmd(2, args + "output_dir=" + full), &out), 0);

  const auto b = start(launch_cmd(2, args + "output_dir=" + cut), dir);
  ASSERT_TRUE(wait_for([&] { return losses(cut).size() >= 3; }, 60)) << read_all(b.log);
  const int worker = worker_pid(b.pid, 1);
  ASSERT_GT(worker, 0);
  kill(worker, SIGTERM);
  ASSERT_TRUE(wait_for([&] { return fs::exists(b.rc) && !read_all(b.rc).empty(); }, 60)) << read_all(b.log);
  // Not finished: the worker exits 128 + SIGTERM, and the launcher with it.
  ASSERT_EQ(std::stoi(read_all(b.rc)), 128 + SIGTERM) << read_all(b.log);
  const auto stopped = losses(cut).size();
  ASSERT_LT(stopped, 12u) << "the run ended before SIGTERM arrived";
  const auto checkpoint = cut + "/checkpoint-" + std::to_string(stopped);
  ASSERT_TRUE(fs::exists(checkpoint + "/optimizer.safetensors")) << read_all(b.log);

  ASSERT_EQ(run_in_repo(launch_cmd(2, args + "output_dir=" + cut + " resume_from_checkpoint=latest"), &out), 0);
  EXPECT_NE(out.find("resumed from"), std::string::npos) << out;
  const auto a = weights(full), c = weights(cut);
  for (const auto& [name, t] : a) EXPECT_TRUE(torch::equal(t, c.at(name))) << name;
  const auto la = losses(full), lc = losses(cut);
  ASSERT_EQ(la.size(), lc.size());
  for (size_t i = 0; i < la.size(); ++i) EXPECT_EQ(la[i], lc[i]) << "step " << i + 1;
}

}  // namespace
