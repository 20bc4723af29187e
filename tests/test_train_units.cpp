// The trainer's parts on their own: AdamW against torch.optim.AdamW, the learning-rate schedules
// against hand-computed values, the sampler's grouping, the loader's order and skipping, and
// activation checkpointing on the tiny model.
#include <ATen/record_function.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "data/loader.h"
#include "data/sampler.h"
#include "qalign/base/error.h"
#include "qalign/io/safetensors.h"
#include "qalign/io/weights.h"
#include "qalign/tokenizer.h"
#include "tests/support/fixtures.h"
#include "tests/support/tiny_golden.h"
#include "train/activation_checkpoint.h"
#include "train/adamw.h"
#include "train/device.h"
#include "train/lr_schedule.h"
#include "train/soft_label_loss.h"

using namespace qalign;

namespace {

train::ParamGroup group(const torch::Tensor& p, double lr, double wd) { return {lr, wd, {"p"}, {p}}; }

const std::vector<std::vector<float>> kGrads = {{0.5f, -1.0f, 2.0f, 0.0f, 1e-7f, 3.0f},
                                                {-0.25f, 0.75f, 1.5f, -2.0f, 0.0f, 1.0f},
                                                {1.0f, 1.0f, -1.0f, 0.5f, -3e-8f, -2.0f}};

torch::Tensor start_param() { return torch::tensor({1.0f, -2.0f, 0.5f, 3.0f, 1e-3f, -7.25f}).requires_grad_(true); }

}  // namespace

// Reference: PyTorch 2.11 on this machine,
//   p = Parameter([1, -2, 0.5, 3, 1e-3, -7.25]); AdamW([p], lr=0.01, betas=(0.8, 0.99), eps=1e-6,
//   weight_decay=0.1); three steps with the gradients kGrads.
TEST(AdamW, MatchesTorchOptimAdamWBitForBit) {
  auto p = start_param();
  train::AdamW opt({group(p, 0.01, 0.1)}, {0.8, 0.99, 1e-6});
  for (const auto& g : kGrads) {
    p.mutable_grad() = torch::tensor(g);
    opt.step(1.0);
  }
  const std::vector<float> want = {0x1.f4bba2p-1f, -0x1.fceb8ap+0f,  0x1.e644e2p-2f,
                                   0x1.805604p+1f, -0x1.dea50cp-12f, -0x1.cfe07ep+2f};
  const std::vector<float> want_avg = {0x1.cac084p-3f,  0x1.89374cp-3f,  0x1.2f1aap-2f,
                                       -0x1.c28f5ep-3f, 0x1.d34adep-28f, 0x1.26e976p-3f};
  const std::vector<float> want_sq = {0x1.ac3eb8p-7f, 0x1.9fa872p-6f,  0x1.24c72ap-4f,
                                      0x1.58e21ap-5f, 0x1.ed7f1ap-54f, 0x1.1ad8e4p-3f};
  const auto state = opt.state_dict();
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(p[i].item<float>(), want[i]) << i;
    EXPECT_EQ(state.at("exp_avg.p")[i].item<float>(), want_avg[i]) << i;
    EXPECT_EQ(state.at("exp_avg_sq.p")[i].item<float>(), want_sq[i]) << i;
  }
  EXPECT_EQ(state.at("step.p").item<int64_t>(), 3);
}

// The fused kernel takes the same three steps up to rounding, with weight decay, a schedule
// factor and a parameter that has no gradient in one step.
TEST(AdamW, FusedEqualsTheSingleTensorPath) {
  auto a = start_param(), b = start_param();
  auto a2 = torch::tensor({0.25f, -4.0f}).requires_grad_(true), b2 = a2.detach().clone().requires_grad_(true);
  train::AdamW plain({group(a, 0.01, 0.1), {0.02, 0.0, {"a2"}, {a2}}}, {0.8, 0.99, 1e-6});
  train::AdamW fused({group(b, 0.01, 0.1), {0.02, 0.0, {"a2"}, {b2}}}, {0.8, 0.99, 1e-6, true});
  for (size_t s = 0; s < kGrads.size(); ++s) {
    a.mutable_grad() = torch::tensor(kGrads[s]);
    b.mutable_grad() = torch::tensor(kGrads[s]);
    a2.mutable_grad() = s == 1 ? torch::Tensor() : torch::tensor({0.5f, -1.5f});
    b2.mutable_grad() = s == 1 ? torch::Tensor() : torch::tensor({0.5f, -1.5f});
    plain.step(0.75);
    fused.step(0.75);
  }
  EXPECT_TRUE(torch::allclose(a, b, 1e-6, 0)) << a << b;
  EXPECT_TRUE(torch::allclose(a2, b2, 1e-6, 0)) << a2 << b2;
  const auto sp = plain.state_dict(), sf = fused.state_dict();
  for (const auto& [name, t] : sp)
    EXPECT_TRUE(torch::allclose(t.to(torch::kFloat64), sf.at(name).to(torch::kFloat64), 1e-6, 0)) << name;
  EXPECT_EQ(sf.at("step.a2").item<int64_t>(), 2);
  EXPECT_FALSE(torch::equal(a, start_param())) << "the parameters moved";
}

TEST(AdamW, FirstStepByHand) {
  // m̂ = g and v̂ = g² after one step, so p' = p(1 - lr·wd) - lr·g / (|g| + eps).
  auto p = torch::tensor({2.0f}).requires_grad_(true);
  train::AdamW opt({group(p, 0.1, 0.5)}, {});
  p.mutable_grad() = torch::tensor({-4.0f});
  opt.step(0.5);  // the schedule halves the rate: lr 0.05
  EXPECT_NEAR(p.item<double>(), 2.0 * (1 - 0.05 * 0.5) + 0.05 * 4.0 / (4.0 + 1e-8), 1e-6);
}

TEST(AdamW, StateRoundTripContinuesIdentically) {
  auto a = start_param(), b = start_param();
  train::AdamW oa({group(a, 0.01, 0.1)}, {0.8, 0.99, 1e-6});
  {
    train::AdamW first({group(b, 0.01, 0.1)}, {0.8, 0.99, 1e-6});
    for (int s = 0; s < 2; ++s) {
      a.mutable_grad() = torch::tensor(kGrads[s]);
      b.mutable_grad() = torch::tensor(kGrads[s]);
      oa.step(1.0);
      first.step(1.0);
    }
    train::AdamW second({group(b, 0.01, 0.1)}, {0.8, 0.99, 1e-6});
    second.load_state_dict(first.state_dict(), "test");
    b.mutable_grad() = torch::tensor(kGrads[2]);
    second.step(1.0);
  }
  a.mutable_grad() = torch::tensor(kGrads[2]);
  oa.step(1.0);
  EXPECT_TRUE(torch::equal(a, b));
}

TEST(AdamW, ParameterWithoutGradientIsLeftAlone) {
  auto p = start_param(), q = start_param();
  train::AdamW opt({{0.01, 0.1, {"p", "q"}, {p, q}}}, {});
  p.mutable_grad() = torch::tensor(kGrads[0]);
  opt.step(1.0);
  EXPECT_TRUE(torch::equal(q, start_param()));
  EXPECT_EQ(opt.state_dict().count("step.q"), 0u);
  EXPECT_THROW(opt.load_state_dict({{"step.r", torch::tensor({int64_t{1}})}}, "test"), Error);
}

TEST(LrSchedule, WarmupStepsAreCeilOfRatio) {
  EXPECT_EQ(train::LrSchedule::make("cosine", 0.03, 333).warmup_steps, 10);  // 9.99 -> 10
  EXPECT_EQ(train::LrSchedule::make("cosine", 0.03, 100).warmup_steps, 3);
  EXPECT_EQ(train::LrSchedule::make("cosine", 0.03, 111 * 3).warmup_steps, 10);
  EXPECT_EQ(train::LrSchedule::make("linear", 0.0, 50).warmup_steps, 0);
  EXPECT_THROW(train::LrSchedule::make("polynomial", 0.0, 50), Error);
}

TEST(LrSchedule, CosineByHand) {
  const auto s = train::LrSchedule::make("cosine", 0.1, 10);  // warm-up 1 step, then 9 of cosine
  EXPECT_EQ(s.factor(0), 0.0);
  EXPECT_EQ(s.factor(1), 1.0);
  EXPECT_NEAR(s.factor(2), 0.9698463103929542, 1e-15);  // (1 + cos(π/9)) / 2
  EXPECT_NEAR(s.factor(4), 0.75, 1e-15);                // (1 + cos(π/3)) / 2
  EXPECT_NEAR(s.factor(7), 0.25, 1e-15);                // (1 + cos(2π/3)) / 2
  EXPECT_NEAR(s.factor(10), 0.0, 1e-15);
  const auto w = train::LrSchedule::make("cosine", 0.25, 10);  // warm-up ceil(2.5) = 3
  EXPECT_NEAR(w.factor(1), 1.0 / 3.0, 1e-15);
  EXPECT_NEAR(w.factor(2), 2.0 / 3.0, 1e-15);
  EXPECT_EQ(w.factor(3), 1.0);
}

TEST(LrSchedule, LinearByHand) {
  const auto s = train::LrSchedule::make("linear", 0.25, 10);  // warm-up 3
  EXPECT_EQ(s.factor(0), 0.0);
  EXPECT_NEAR(s.factor(1), 1.0 / 3.0, 1e-15);
  EXPECT_EQ(s.factor(3), 1.0);
  EXPECT_NEAR(s.factor(5), 5.0 / 7.0, 1e-15);
  EXPECT_EQ(s.factor(10), 0.0);
  EXPECT_EQ(s.factor(12), 0.0);  // clamped, never negative
}

TEST(LrSchedule, ConstantIgnoresWarmupLikeHF) {
  const auto s = train::LrSchedule::make("constant", 0.5, 10);
  for (int64_t i = 0; i <= 10; ++i) EXPECT_EQ(s.factor(i), 1.0);
}

TEST(Sampler, ModalityLengthCountsWordsLikePythonSplit) {
  EXPECT_EQ(data::modality_length({"How would you rate\n<|image|>", "The quality of the image is good."}, true), 12);
  EXPECT_EQ(data::modality_length({"  two\t words "}, false), -2);
}

TEST(Sampler, LengthGroupedMegabatchesAreSortedAndEvenlySplit) {
  // One megabatch of 4 = all samples; sorted 9,7,5,3; greedy split into 2 chunks:
  // 9 -> chunk 0, 7 -> chunk 1, 5 -> chunk 1 (now full), 3 -> chunk 0.
  data::SamplerOptions o;
  o.batch_size = 2;
  o.world_size = 2;
  const std::vector<int64_t> lengths = {5, 9, 3, 7};
  EXPECT_EQ(data::epoch_order(lengths, o, 0), (std::vector<int64_t>{1, 2, 3, 0}));
  // With megabatches of 2, every consecutive pair is longest first.
  o.world_size = 1;
  const std::vector<int64_t> many = {5, 3, 9, 1, 7, 2, 8, 4};
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    const auto order = data::epoch_order(many, o, epoch);
    auto sorted = order;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7}));
    for (size_t i = 0; i < order.size(); i += 2) EXPECT_GT(many[order[i]], many[order[i + 1]]);
    EXPECT_EQ(order, data::epoch_order(many, o, epoch));  // deterministic
  }
  EXPECT_NE(data::epoch_order(many, o, 0), data::epoch_order(many, o, 1));
}

TEST(Sampler, MixedModalitiesKeepTheirOwnMegabatches) {
  data::SamplerOptions o;
  o.batch_size = 2;
  const std::vector<int64_t> lengths = {5, -3, 9, -1, 7, -2, 8};  // 4 multimodal, 3 text-only
  const auto order = data::epoch_order(lengths, o, 0);
  ASSERT_EQ(order.size(), lengths.size());
  // Full megabatches hold one modality; the leftovers (last of each) come last, merged, by index.
  for (size_t i = 0; i + 2 < order.size(); i += 2) EXPECT_EQ(lengths[order[i]] > 0, lengths[order[i + 1]] > 0);
  EXPECT_LT(order[order.size() - 2], order.back());
}

TEST(Sampler, NoShuffleIsFileOrder) {
  data::SamplerOptions o;
  o.shuffle = false;
  EXPECT_EQ(data::epoch_order({4, 1, 3}, o, 5), (std::vector<int64_t>{0, 1, 2}));
}

namespace {

std::vector<TrainingRecord> fixture_records(const std::vector<std::string>& images) {
  nlohmann::json records = nlohmann::json::array();
  for (size_t i = 0; i < images.size(); ++i)
    records.push_back({{"id", "r" + std::to_string(i)},
                       {"image", images[i]},
                       {"conversations",
                        {{{"from", "human"}, {"value", "Rate the quality of this image.\n<|image|>"}},
                         {{"from", "gpt"}, {"value", "The quality of the image is good."}}}}});
  return parse_training_records(records, "test", test::fixture("qalign-tiny/inputs"));
}

std::vector<data::TrainBatch> whole_epoch(data::TrainLoader& loader, int64_t epoch) {
  loader.start_epoch(epoch);
  std::vector<data::TrainBatch> out;
  while (auto b = loader.next()) out.push_back(std::move(*b));
  return out;
}

data::LoaderOptions loader_options(int64_t workers) {
  data::LoaderOptions o;
  o.batch_size = 2;
  o.image_size = 56;
  o.num_workers = workers;
  o.max_skipped_fraction = 0.5;
  o.sampler.group_by_modality_length = false;
  return o;
}

}  // namespace

TEST(TrainLoader, SameBatchesWithAnyWorkerCountAndSkipsUnreadableSamples) {
  const auto tok = std::make_shared<const Tokenizer>(test::fixture("qalign-tiny/model"));
  const std::vector<std::string> images = {"img_wide.png", "missing.png", "img_tall.jpg", "img_big.png",
                                           "img_wide.png"};
  data::TrainLoader serial(fixture_records(images), tok, loader_options(0));
  data::TrainLoader threaded(fixture_records(images), tok, loader_options(3));
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    const auto a = whole_epoch(serial, epoch), b = whole_epoch(threaded, epoch);
    ASSERT_EQ(a.size(), 2u);  // 4 readable samples in batches of 2
    ASSERT_EQ(b.size(), a.size());
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].ids, b[i].ids);
      EXPECT_TRUE(torch::equal(a[i].text.input_ids, b[i].text.input_ids));
      for (size_t k = 0; k < a[i].pixels.size(); ++k) {
        EXPECT_TRUE(torch::equal(a[i].pixels[k], b[i].pixels[k]));
        EXPECT_EQ(a[i].pixels[k].sizes(), (std::vector<int64_t>{1, 3, 56, 56}));
      }
      for (const auto& id : a[i].ids) EXPECT_NE(id, "r1");
    }
    EXPECT_EQ(serial.skipped_in_epoch(), 1);
    EXPECT_EQ(threaded.skipped_in_epoch(), 1);
  }
  // Resuming mid-epoch from a batch's end position gives the rest of that epoch.
  const auto full = whole_epoch(threaded, 1);
  threaded.start_epoch(1, full[0].end_position);
  const auto rest = threaded.next();
  ASSERT_TRUE(rest);
  EXPECT_EQ(rest->ids, full[1].ids);
}

TEST(TrainLoader, StopsWhenTooManySamplesAreUnreadable) {
  const auto tok = std::make_shared<const Tokenizer>(test::fixture("qalign-tiny/model"));
  auto o = loader_options(2);
  o.max_skipped_fraction = 0.25;  // one of the four may be missing; two are
  data::TrainLoader loader(fixture_records({"missing1.png", "img_wide.png", "missing2.png", "img_tall.jpg"}), tok, o);
  loader.start_epoch(0);
  try {
    while (loader.next()) {
    }
    FAIL() << "expected the loader to stop";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("max_skipped_sample_fraction"), std::string::npos) << what;
    EXPECT_NE(what.find("2 of the 4 samples"), std::string::npos) << what;
    EXPECT_NE(what.find("more than 0.25 of them"), std::string::npos) << what;
    EXPECT_NE(what.find("image file does not exist"), std::string::npos) << what;
  }
}

TEST(TrainLoader, VideoAndMultiImageSamplesGiveOneBlockOfFrames) {
  const auto tok = std::make_shared<const Tokenizer>(test::fixture("qalign-tiny/model"));
  nlohmann::json records = nlohmann::json::array();
  const nlohmann::json turns = {{{"from", "human"}, {"value", "Rate the quality of this video.\n<|image|><|image|>"}},
                                {{"from", "gpt"}, {"value", "The quality of the video is fair."}}};
  records.push_back({{"id", "video"}, {"image", "video.avi"}, {"conversations", turns}});
  records.push_back({{"id", "pair"}, {"image", {"img_wide.png", "img_tall.jpg"}}, {"conversations", turns}});
  auto o = loader_options(1);
  o.sampler.shuffle = false;
  data::TrainLoader loader(parse_training_records(records, "test", test::fixture("qalign-tiny/inputs")), tok, o);
  const auto batches = whole_epoch(loader, 0);
  ASSERT_EQ(batches.size(), 1u);
  const auto& b = batches[0];
  EXPECT_EQ(b.pixels[0].sizes(), (std::vector<int64_t>{4, 3, 56, 56}));  // 4 frames at 1 fps
  EXPECT_EQ(b.pixels[1].sizes(), (std::vector<int64_t>{2, 3, 56, 56}));
  // Both placeholders collapse into one (the authors' preprocess_multimodal).
  for (int64_t i = 0; i < 2; ++i) EXPECT_EQ((b.text.input_ids[i] == kImageTokenIndex).sum().item<int64_t>(), 1);
}

namespace {

// Loss and gradients of the golden training batch (fed directly) through the tiny model.
std::map<std::string, torch::Tensor> golden_grads(bool checkpointing, bool freeze_vision) {
  auto golden = io::SafetensorsFile::open(test::fixture("qalign-tiny/golden.safetensors"));
  auto m = io::load_pretrained(test::fixture("qalign-tiny/model"));
  m->train();
  for (auto& p : m->model->vision_model->parameters()) p.set_requires_grad(!freeze_vision);
  train::set_activation_checkpointing(m, checkpointing);
  const auto pixels = golden->get("train.pixel_values").flatten(0, 1);
  const auto tokens = m->model->encode_images(pixels);
  const auto inputs = m->model->splice(golden->get("train.input_ids"), {tokens[0], tokens[1]},
                                       golden->get("train.attention_mask"), golden->get("train.labels"));
  m->lm_loss(inputs).backward();
  std::map<std::string, torch::Tensor> grads;
  for (const auto& p : m->named_parameters())
    if (p.value().grad().defined()) grads[p.key()] = p.value().grad().clone();
  return grads;
}

}  // namespace

TEST(ActivationCheckpointing, SameGradientsAsWithout) {
  for (const bool freeze_vision : {false, true}) {
    SCOPED_TRACE(freeze_vision ? "vision frozen" : "all trainable");
    const auto off = golden_grads(false, freeze_vision), on = golden_grads(true, freeze_vision);
    ASSERT_EQ(on.size(), off.size());
    EXPECT_EQ(on.size(), freeze_vision ? 108u - 31u : 108u);
    for (const auto& [name, g] : off) {
      ASSERT_TRUE(on.count(name)) << name;
      EXPECT_LE((on.at(name) - g).abs().max().item<double>(), 1e-6) << name;
    }
  }
}

TEST(ActivationCheckpointing, RecomputesEachBlockInBackward) {
  auto m = io::load_pretrained(test::fixture("qalign-tiny/model"));
  int calls = 0;
  const model::BlockRunner counting = [&](torch::nn::Module& block, const model::BlockForward& f,
                                          const torch::Tensor& h) {
    return train::checkpointed(
        block,
        [&, f](const torch::Tensor& x) {
          ++calls;
          return f(x);
        },
        h);
  };
  m->model->vision_model->run_block = counting;
  const auto out = m->model->vision_model(torch::randn({1, 3, 56, 56}));
  EXPECT_EQ(calls, 2);  // two encoder layers, forward
  out.sum().backward();
  EXPECT_EQ(calls, 4);  // and once more each in backward
}

// A run's peak memory on the CPU is the process's peak resident set (on CUDA it is the caching
// allocator's peak reserved bytes, which the device check reports).
TEST(PeakMemory, OnTheCpuItIsThePeakResidentSet) {
  std::vector<char> block(size_t{96} << 20, 1);  // 96 MiB touched
  const double mib = train::peak_memory_mib(torch::kCPU);
  EXPECT_GE(mib, 96.0) << "block ends in " << static_cast<int>(block.back());  // used, so it stays
  EXPECT_NEAR(mib, static_cast<double>(train::peak_resident_bytes()) / (1 << 20), 4.0);
}

// The operations that make the host wait for a GPU (reading a scalar, nonzero's count), counted
// through the dispatcher while one micro-batch's forward and losses run: none, since splice works
// out the token routing, the supervised rows and the level words' positions on the host. Counted
// on the CPU, where these are the same operations that would synchronise on CUDA.
namespace {

std::atomic<int> g_sync_ops{0}, g_ops{0};

std::unique_ptr<at::ObserverContext> count_sync_op(const at::RecordFunction& fn) {
  const std::string name = fn.name();
  ++g_ops;
  if (name == "aten::nonzero" || name == "aten::_local_scalar_dense" || name == "aten::item") ++g_sync_ops;
  return nullptr;
}

}  // namespace

TEST(HostSync, NoneInTheForwardAndLossesOfAMicroBatch) {
  auto m = io::load_pretrained(test::fixture("qalign-tiny/model"));
  const auto& g = test::tiny_golden();
  const auto pixels = g.get("train.pixel_values");  // [B,1,3,S,S]
  std::vector<torch::Tensor> visual;
  for (int64_t b = 0; b < pixels.size(0); ++b)
    visual.push_back(m->model->encode_images(pixels[b]).reshape({-1, m->config.hidden_size}));
  const auto in = m->model->splice(g.get("train.input_ids"), visual, g.get("train.attention_mask").to(torch::kBool),
                                   g.get("train.labels"));
  const auto level_ids = Tokenizer(test::fixture("qalign-tiny/model")).level_token_ids();
  const std::vector<std::vector<double>> targets(static_cast<size_t>(pixels.size(0)), {0.1, 0.6, 0.2, 0.1, 0.0});
  const std::vector<std::string> ids(static_cast<size_t>(pixels.size(0)), "golden");
  const auto handle =
      at::addGlobalCallback(at::RecordFunctionCallback(count_sync_op).scopes({at::RecordScope::FUNCTION}));
  const auto loss = m->lm_loss(in);
  const auto hidden = m->model(in);
  const auto kl = train::soft_level_kl(m, hidden, in.host_labels, level_ids, targets, ids);
  (loss + kl).backward();
  const int syncs = g_sync_ops.load(), seen = g_ops.load();
  torch::nonzero(torch::ones({3}) > 0);  // what the counter must see
  const int control = g_sync_ops.load() - syncs;
  at::removeCallback(handle);
  EXPECT_EQ(syncs, 0);
  EXPECT_GT(seen, 100) << "the dispatcher hook saw the forward";
  EXPECT_EQ(control, 1) << "the hook counts nonzero";
  EXPECT_TRUE(std::isfinite(loss.item<double>()) && std::isfinite(kl.item<double>()));
}

// The offloaded optimizer's host threads: the setting, else the cores shared by the node's ranks.
TEST(HostThreads, OffloadedOptimizerSharesTheCoresByDefault) {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  EXPECT_EQ(train::host_optimizer_threads(5, 8), 5);
  EXPECT_EQ(train::host_optimizer_threads(0, 1), cores);
  EXPECT_EQ(train::host_optimizer_threads(0, 4 * cores), 1);
}
