// The authors' golden training step through the Trainer on the test device (QALIGN_TEST_DEVICE=cuda
// on the GPU check, else the CPU), in float32: the golden batch's own tensors enter through a
// BatchSource, so this runs where nothing decodes images. Tolerances as tests/test_train.cpp's
// (tests/fixtures/qalign-tiny/MANIFEST.md).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <iostream>

#include "qalign/io/safetensors.h"
#include "qalign/model/llama.h"
#include "tests/support/fixtures.h"
#include "tests/support/goldens.h"
#include "tests/support/tiny_golden.h"
#include "train/host_buffer.h"
#include "train/trainer.h"

using namespace qalign;

namespace {

class GoldenBatch : public data::BatchSource {
 public:
  GoldenBatch() {
    const auto& g = test::tiny_golden();
    batch_.text.input_ids = g.get("train.input_ids");
    batch_.text.labels = g.get("train.labels");
    batch_.text.attention_mask = g.get("train.attention_mask").to(torch::kBool);
    const auto pixels = g.get("train.pixel_values");  // [B,1,3,S,S]
    for (int64_t b = 0; b < pixels.size(0); ++b) {
      batch_.ids.push_back("golden" + std::to_string(b));
      batch_.pixels.push_back(pixels[b]);
      batch_.mos.push_back(std::nan(""));
    }
    batch_.level_probs.resize(batch_.ids.size());
    batch_.end_position = static_cast<int64_t>(batch_.ids.size());
  }
  int64_t size() const override { return static_cast<int64_t>(batch_.ids.size()); }
  int64_t batches_per_epoch() const override { return 1; }
  void start_epoch(int64_t, int64_t) override { given_ = false; }
  std::optional<data::TrainBatch> next() override {
    if (given_) return std::nullopt;
    given_ = true;
    return batch_;
  }
  int64_t skipped_total() const override { return 0; }

 private:
  data::TrainBatch batch_;
  bool given_ = false;
};

// The golden step through the Trainer with `configure` applied to the recipe, checked against the
// authors' loss, updated weights and (where the trainer dumps them: not from ZeRO's shards) gradients.
void expect_golden_step(const std::function<void(config::TrainConfig&)>& configure, bool gradients = true) {
  test::ScratchDir dir("qalign_golden_device");
  config::TrainConfig c;  // tests/fixtures/train/tiny_golden.yaml's recipe
  c.model_name_or_path = test::fixture("qalign-tiny/model");
  c.output_dir = dir.file("run");
  c.max_steps = 1;
  c.per_device_train_batch_size = 2;
  c.learning_rate = 1e-3;
  c.weight_decay = 0;
  c.lr_scheduler_type = "constant";
  c.warmup_ratio = 0;
  c.max_grad_norm = 0;
  c.bf16 = false;
  c.tf32 = false;  // float32 matmuls on CUDA too: TF32 (~5e-4 relative) would exceed the goldens' tolerances
  c.gradient_checkpointing = false;
  c.dataloader_num_workers = 0;
  c.save_steps = 1000;
  c.device = test::test_device().is_cuda() ? "cuda" : "cpu";
  configure(c);
  train::TrainerOptions o;
  o.batches = std::make_shared<GoldenBatch>();
  o.dump_first_step = dir.file("step.safetensors");
  {
    train::Trainer trainer(c, std::move(o));
    trainer.train();
  }
  const auto dump = io::SafetensorsFile::open(dir.file("step.safetensors"));
  const auto after = io::SafetensorsFile::open(dir.file("run/model.safetensors"));
  const auto& g = test::tiny_golden();
  const double loss = dump->get("loss").item<double>(), want = g.get("train.loss").item<double>();
  EXPECT_LE(std::abs(loss - want) / std::abs(want), 1e-5) << loss << " vs " << want;
  size_t grads = 0;
  for (const auto& [name, info] : g.json["state_dict"].items()) {
    if (!gradients) break;
    if (!g.tensors->contains("train.grad." + name)) continue;
    SCOPED_TRACE(name);
    ASSERT_TRUE(dump->contains("grad." + name));
    const auto want_grad = g.get("train.grad." + name);
    EXPECT_LE(test::max_diff(dump->get("grad." + name), want_grad),
              1e-4 * std::max(1.0, want_grad.abs().max().item<double>()));
    grads += 1;
  }
  EXPECT_EQ(grads, gradients ? 108u : 0u);
  for (const auto& name : g.json["train"]["tracked_params"]) {
    const std::string n = name.get<std::string>();
    SCOPED_TRACE(n);
    const auto diff = (after->get(n).to(torch::kFloat64) - g.get("train.after_adamw." + n).to(torch::kFloat64)).abs();
    const auto tiny = g.get("train.grad." + n).abs() < 1e-6;  // steps of about lr · sign(~0): held to 1e-3
    EXPECT_LE(diff.masked_fill(tiny, 0).max().item<double>(), 1e-5);
    EXPECT_LE(diff.masked_fill(tiny.logical_not(), 0).max().item<double>(), 1e-3);
  }
}

// The launch environment of one rank, for as long as it lives.
class OneRankEnvironment {
 public:
  OneRankEnvironment() {
    const std::string port = std::to_string(test::free_port());
    for (const auto& [k, v] : {std::pair<const char*, std::string>{"RANK", "0"},
                               {"WORLD_SIZE", "1"},
                               {"LOCAL_RANK", "0"},
                               {"LOCAL_WORLD_SIZE", "1"},
                               {"MASTER_ADDR", "127.0.0.1"},
                               {"MASTER_PORT", port}})
      setenv(k, v.c_str(), 1);
  }
  ~OneRankEnvironment() {
    for (const char* k : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"})
      unsetenv(k);
  }
};

}  // namespace

TEST(TrainGoldenOnDevice, OneAdamWStepMatchesTheAuthors) {
  expect_golden_step([](config::TrainConfig&) {});
}

// ZeRO-2 with the optimizer on the host, one rank of a real process group (NCCL on a GPU, Gloo
// here): the reduced gradients come back through page-locked memory without blocking the host,
// and the step must still be the authors'.
TEST(TrainGoldenOnDevice, OffloadedZeroStageTwoStepMatchesTheAuthors) {
  OneRankEnvironment env;
  expect_golden_step(
      [](config::TrainConfig& c) {
        c.zero_stage = 2;
        c.offload_optimizer = "cpu";
        c.ddp_bucket_cap_mb = 0.05;  // several buckets, so gradients land while others are in flight
      },
      /*gradients=*/false);
}

// Which SDPA kernel a right-padded training batch gets, at LLaMA-2-7B's attention shapes (the
// device check reads the printed line on the GPU): the real positions' outputs are exact without
// a key mask, so padding must not push the batch off the fused causal kernel.
TEST(TrainGoldenOnDevice, RightPaddedBatchKeepsTheCausalKernel) {
  const auto device = test::test_device();
  const auto opts = torch::TensorOptions(device).dtype(device.is_cuda() ? torch::kBFloat16 : torch::kFloat32);
  const int64_t B = 4, H = 32, L = 1100, D = 128;
  const auto q = torch::randn({B, H, L, D}, opts), k = torch::randn({B, H, L, D}, opts),
             v = torch::randn({B, H, L, D}, opts);
  auto real = torch::ones({B, L}, torch::TensorOptions(device).dtype(torch::kBool));
  real.narrow(1, L - 200, 200).narrow(0, 1, B - 1).fill_(false);  // rows 1..B-1 end in padding
  const auto choice = [&](const std::optional<torch::Tensor>& mask) {
    return at::_fused_sdp_choice(q, k, v, mask, 0.0, !mask.has_value());
  };
  const auto unpadded = choice(std::nullopt), ours = choice(model::causal_padding_mask(real)),
             with_mask = choice(model::causal_padding_mask(real, /*inner_padding=*/true));
  const auto name = [](int64_t b) {
    static const char* names[] = {"math", "flash", "efficient", "cudnn", "overrideable"};
    return b >= 0 && b < 5 ? std::string(names[b]) : "backend " + std::to_string(b);
  };
  std::cout << "[sdpa] " << device.str() << ": unpadded causal " << name(unpadded) << ", right-padded batch "
            << name(ours) << " (with a key mask it would be " << name(with_mask) << ")\n";
  EXPECT_EQ(ours, unpadded);
}

// ZeRO's offloaded state: page-locked host memory of the size asked, whole pages (the caching
// host allocator would round a block up to a power of two). A GPU is needed to page-lock; the
// device check runs this there.
TEST(HostBuffer, PinnedIsTheSizeAskedToAPage) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "page-locking needs CUDA: scripts/device_check.sh runs this";
  const int64_t numel = (int64_t{600} << 20) / 4 + 3;  // 600 MiB and 12 bytes: 1 GiB as a power of two
  const auto t = train::host_zeros(numel, torch::kFloat32, /*pinned=*/true);
  EXPECT_TRUE(t.is_pinned());
  EXPECT_EQ(t.numel(), numel);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data_ptr()) % 4096, 0u);
  EXPECT_EQ(t.abs().max().item<float>(), 0.0f);
  const auto on_gpu = t.to(torch::kCUDA, /*non_blocking=*/true);
  EXPECT_EQ(on_gpu.sum().item<float>(), 0.0f);
}

TEST(HostBuffer, UnpinnedIsAnOrdinaryTensor) {
  const auto t = train::host_zeros(1000, torch::kFloat32, /*pinned=*/false);
  EXPECT_EQ(t.numel(), 1000);
  EXPECT_FALSE(t.is_pinned());
  EXPECT_EQ(t.abs().max().item<float>(), 0.0f);
}
