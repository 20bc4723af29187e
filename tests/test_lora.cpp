// LoRA against the authors' own LoRA code path (PEFT 0.4.0 + builder.py) on the tiny fixture:
// tests/fixtures/qalign-lora/MANIFEST.md describes the goldens and gives the tolerances used here.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "qalign/base/error.h"
#include "qalign/io/checkpoint.h"
#include "qalign/io/lora_folder.h"
#include "qalign/io/safetensors.h"
#include "qalign/io/weights.h"
#include "qalign/model/lora.h"
#include "qalign/scoring.h"
#include "tests/support/fixtures.h"
#include "tests/support/goldens.h"
#include "train/adamw.h"

using namespace qalign;
namespace fs = std::filesystem;

namespace {

struct Golden {
  std::shared_ptr<io::SafetensorsFile> tensors =
      io::SafetensorsFile::open(test::fixture("qalign-lora/golden.safetensors"));
  nlohmann::json json = nlohmann::json::parse(std::ifstream(test::fixture("qalign-lora/golden.json")));
  torch::Tensor get(const std::string& name) const { return tensors->get(name); }
};

const Golden& lora_golden() {
  static const Golden g;
  return g;
}

const std::string kBase = "qalign-tiny/model";
const std::string kLoraFolder = "qalign-lora/q-align-tiny-lora";

// Our parameter name -> the in-memory PeftModel name the goldens use.
std::string peft_name(const std::string& name) {
  std::string n = "base_model.model." + name;
  for (const std::string part : {".lora_A.", ".lora_B."}) {
    const auto at = n.find(part);
    if (at != std::string::npos) n.replace(at, part.size(), part + "default.");
  }
  return n;
}

model::LoraConfig fixture_config() {
  const auto& l = lora_golden().json["lora"];
  model::LoraConfig c;
  c.r = l["r"].get<int64_t>();
  c.alpha = l["lora_alpha"].get<double>();
  c.dropout = l["lora_dropout"].get<double>();
  c.target_modules = lora_golden().json["find_all_linear_names"].get<std::vector<std::string>>();
  return c;
}

// The base model with the goldens' initial adapters (A, B before training).
model::Owl2ForCausalLM model_with_initial_adapters() {
  auto m = io::load_pretrained(test::fixture(kBase));
  model::attach_lora(*m, fixture_config());
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : io::lora_state_dict(*m)) t.copy_(lora_golden().get("init." + peft_name(name)));
  return m;
}

// The golden image case through `m` in eval mode: level probabilities and scores.
void expect_image_case(model::Owl2ForCausalLM& m, const std::string& stage, double logits_tol = 1e-4) {
  SCOPED_TRACE(stage);
  torch::NoGradGuard no_grad;
  m->eval();
  const auto tokens = m->model->encode_images(lora_golden().get("input.pixel_values"));
  const auto inputs = m->model->splice(lora_golden().get("input.input_ids"), {tokens[0]});
  const auto logits = m->last_logits(inputs);
  const auto s = score_from_logits(logits, lora_golden().json["preferential_ids"].get<std::vector<int64_t>>());
  const double logits_diff = test::max_diff(logits, lora_golden().get(stage + ".logits_last"));
  const double probs_diff = test::max_diff(s.probs, lora_golden().get(stage + ".level_probs"));
  EXPECT_LE(logits_diff, logits_tol);
  EXPECT_LE(probs_diff, 1e-5);
  EXPECT_LE(test::max_diff(s.score5, lora_golden().get(stage + ".score_model")), 1e-5);
  EXPECT_LE(test::max_diff(s.score01, lora_golden().get(stage + ".score_scorer")), 1e-5);
  std::cout << "[lora] " << stage << ": logits max diff " << logits_diff << ", level_probs max diff " << probs_diff
            << "\n";
}

// One training step on the goldens' batch: loss, gradients and parameters after torch's AdamW.
struct StepResult {
  double loss = 0;
  std::vector<std::pair<std::string, torch::Tensor>> trainable;  // after the step, .grad() kept
};

StepResult train_step(model::Owl2ForCausalLM& m, bool replay_dropout) {
  m->train();
  std::vector<std::pair<std::string, torch::Tensor>> trainable;
  for (auto& p : m->named_parameters()) {
    const bool on = model::is_lora_parameter(p.key()) || p.key().rfind("model.visual_abstractor.", 0) == 0;
    p.value().set_requires_grad(on);
    if (on) trainable.emplace_back(p.key(), p.value());
  }
  for (auto& [name, linear] : model::lora_modules(*m))
    linear->lora->replay_mask =
        replay_dropout ? lora_golden().get("train.dropout_mask." + peft_name(name)) : torch::Tensor();
  if (!replay_dropout) m->eval();  // the golden's train_nodropout ran in eval mode

  const auto pixels = lora_golden().get("train.pixel_values");
  const auto tokens = m->model->encode_images(pixels.reshape({-1, pixels.size(2), pixels.size(3), pixels.size(4)}));
  std::vector<torch::Tensor> visual;
  for (int64_t b = 0; b < tokens.size(0); ++b) visual.push_back(tokens[b]);
  const auto inputs =
      m->model->splice(lora_golden().get("train.input_ids"), visual,
                       lora_golden().get("train.attention_mask").to(torch::kBool), lora_golden().get("train.labels"));
  const auto loss = m->lm_loss(inputs);
  loss.backward();
  return {loss.item<double>(), trainable};
}

// A LoRA folder holding the goldens' initial adapters, for runs of the trainer from them.
void write_initial_folder(const std::string& dir) {
  auto m = model_with_initial_adapters();
  std::vector<std::string> adapted;
  for (const auto& [name, linear] : model::lora_modules(*m)) adapted.push_back(name);
  io::write_lora_folder(dir, fixture_config(), adapted, io::lora_state_dict(*m), {}, m->config.to_json(),
                        test::fixture(kBase));
}

}  // namespace

TEST(LoraTargets, ShortNamesAndDefault) {
  EXPECT_EQ(model::lora_targets({}, "test"), (std::vector<std::string>{"q_proj", "v_proj.multiway.1"}));
  EXPECT_EQ(model::lora_targets({"q", "v", "down"}, "test"),
            (std::vector<std::string>{"q_proj", "v_proj.multiway.0", "v_proj.multiway.1", "down_proj"}));
  auto m = io::load_pretrained(test::fixture(kBase));
  model::LoraConfig c;
  c.r = 4;
  const auto adapted = model::attach_lora(*m, c);
  EXPECT_EQ(adapted, (std::vector<std::string>{
                         "model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj.multiway.1",
                         "model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj.multiway.1"}));
  c.target_modules = {"no_such_proj"};
  auto other = io::load_pretrained(test::fixture(kBase));
  EXPECT_THROW(model::attach_lora(*other, c), Error);
}

// A fresh adapter (B = 0) leaves the model's output unchanged.
TEST(LoraGolden, FreshAdapterIsTheBaseModel) {
  auto m = io::load_pretrained(test::fixture(kBase));
  model::attach_lora(*m, fixture_config());
  torch::NoGradGuard no_grad;
  m->eval();
  const auto tokens = m->model->encode_images(lora_golden().get("input.pixel_values"));
  const auto logits = m->last_logits(m->model->splice(lora_golden().get("input.input_ids"), {tokens[0]}));
  EXPECT_LE(test::max_diff(logits, lora_golden().get("base.logits_last")), 1e-4);
}

TEST(LoraGolden, InitialAdaptersGivePreTrain) {
  auto m = model_with_initial_adapters();
  expect_image_case(m, "pre_train");
}

TEST(LoraGolden, AuthorsFolderGivesPostTrain) {
  auto m = io::load_pretrained(test::fixture(kBase));
  const auto f = io::apply_lora_folder(m, test::fixture(kLoraFolder));
  EXPECT_EQ(f.adapters.size(), 8u);
  EXPECT_EQ(f.non_lora_trainables.size(), lora_golden().json["non_lora_trainables.bin_keys"].size());
  EXPECT_EQ(f.base_model, "q-future/one-align");
  expect_image_case(m, "post_train");
}

TEST(LoraGolden, MergeGivesTheAuthorsMergedWeights) {
  auto m = io::load_pretrained(test::fixture(kBase));
  io::apply_lora_folder(m, test::fixture(kLoraFolder));
  model::merge_lora(*m);
  EXPECT_TRUE(model::lora_modules(*m).empty());
  const auto want = io::load_weights(test::fixture("qalign-lora/merged/model.safetensors"));
  const auto got = io::state_dict(*m);
  double worst = 0;
  for (const auto& [name, t] : want) {
    if (name.find("rotary_emb.inv_freq") != std::string::npos) continue;
    ASSERT_TRUE(got.count(name)) << name;
    worst = std::max(worst, test::max_diff(got.at(name), t));
  }
  for (const auto& [name, t] : got) EXPECT_TRUE(want.count(name)) << name;
  EXPECT_LE(worst, 1e-6);
  std::cout << "[lora] merged weights max diff " << worst << "\n";
  expect_image_case(m, "merged");
  // merged and unmerged agree as closely as the oracle's own pair (MANIFEST: ~1e-5).
  expect_image_case(m, "post_train");
}

// MANIFEST "Tolerances (float32, CPU)": loss relative 1e-5, grads 1e-4 · max(1, max|grad|),
// parameters after AdamW 1e-5 except elements with |grad| < 1e-6, which may move by up to lr.
TEST(LoraGolden, OneTrainingStepWithReplayedDropout) {
  auto m = model_with_initial_adapters();
  const auto run = train_step(m, /*replay_dropout=*/true);
  const double want_loss = lora_golden().get("train.loss").item<double>();
  EXPECT_LE(std::abs(run.loss - want_loss) / want_loss, 1e-5) << run.loss << " vs " << want_loss;
  ASSERT_EQ(run.trainable.size(), lora_golden().json["trainable_parameters"].size());

  double worst_grad = 0;
  train::ParamGroup group{1e-3, 0.0, {}, {}};
  for (const auto& [name, p] : run.trainable) {
    SCOPED_TRACE(name);
    const auto want = lora_golden().get("train.grad." + peft_name(name));
    ASSERT_TRUE(p.grad().defined());
    const double diff = test::max_diff(p.grad(), want);
    EXPECT_LE(diff, 1e-4 * std::max(1.0, test::max_abs(want)));
    worst_grad = std::max(worst_grad, diff);
    group.names.push_back(name);
    group.params.push_back(p);
  }
  const auto lr = lora_golden().json["train"]["optimizer"]["lr"].get<double>();
  group.lr = lr;
  train::AdamW adamw({group}, {0.9, 0.999, 1e-8});
  adamw.step(1.0);
  double worst_param = 0, worst_tiny = 0;
  for (const auto& [name, p] : run.trainable) {
    SCOPED_TRACE(name);
    const auto want = lora_golden().get("train.after_adamw." + peft_name(name));
    const auto tiny = lora_golden().get("train.grad." + peft_name(name)).abs() < 1e-6;
    const auto diff = (p.detach().to(torch::kFloat64) - want.to(torch::kFloat64)).abs();
    const double regular = diff.masked_fill(tiny, 0).max().item<double>();
    const double near_zero = diff.masked_fill(tiny.logical_not(), 0).max().item<double>();
    EXPECT_LE(regular, 1e-5);
    EXPECT_LE(near_zero, lr * (1 + 1e-6));
    worst_param = std::max(worst_param, regular);
    worst_tiny = std::max(worst_tiny, near_zero);
  }
  std::cout << "[lora] step: loss " << run.loss << " vs " << want_loss << ", grad max diff " << worst_grad
            << ", after-AdamW max diff " << worst_param << " (|grad| < 1e-6: " << worst_tiny << ")\n";

  // The step's weights give the authors' saved state.
  expect_image_case(m, "post_train");
}

TEST(LoraGolden, OneTrainingStepWithoutDropout) {
  auto m = model_with_initial_adapters();
  const auto run = train_step(m, /*replay_dropout=*/false);
  const double want_loss = lora_golden().get("train_nodropout.loss").item<double>();
  EXPECT_LE(std::abs(run.loss - want_loss) / want_loss, 1e-5) << run.loss << " vs " << want_loss;
  double worst = 0;
  for (const auto& [name, p] : run.trainable) {
    SCOPED_TRACE(name);
    const auto want = lora_golden().get("train_nodropout.grad." + peft_name(name));
    const double diff = test::max_diff(p.grad(), want);
    EXPECT_LE(diff, 1e-4 * std::max(1.0, test::max_abs(want)));
    worst = std::max(worst, diff);
  }
  std::cout << "[lora] no-dropout step: loss " << run.loss << " vs " << want_loss << ", grad max diff " << worst
            << "\n";
}

// Our own folder round-trips: what write_lora_folder saves, apply_lora_folder restores.
TEST(LoraFolder, WrittenFolderReloads) {
  test::ScratchDir dir("lora_folder");
  auto m = io::load_pretrained(test::fixture(kBase));
  const auto f = io::apply_lora_folder(m, test::fixture(kLoraFolder));
  std::vector<std::string> adapted;
  for (const auto& [name, linear] : model::lora_modules(*m)) adapted.push_back(name);
  io::StateDict extra;
  for (const auto& [name, t] : f.non_lora_trainables) extra[name] = io::state_dict(*m).at(name);
  io::write_lora_folder(dir.path(), f.config, adapted, io::lora_state_dict(*m), extra, m->config.to_json(),
                        test::fixture(kBase));
  for (const char* file :
       {"adapter_config.json", "adapter_model.safetensors", "non_lora_trainables.bin", "config.json"})
    EXPECT_TRUE(std::filesystem::exists(dir.file(file))) << file;
  // PEFT's key names on disk.
  const auto saved = io::SafetensorsFile::open(dir.file("adapter_model.safetensors"));
  EXPECT_TRUE(saved->contains("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"));

  auto again = io::load_pretrained(test::fixture(kBase));
  io::apply_lora_folder(again, dir.path());
  const auto a = io::state_dict(*m), b = io::state_dict(*again);
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) EXPECT_TRUE(torch::equal(t, b.at(name))) << name;
}

// The trainer's LoRA run from the goldens' initial adapters, dropout off: its first step has the
// authors' train_nodropout loss and gradients, and it saves PEFT's layout.
TEST(LoraTrain, FirstStepMatchesTheAuthorsWithoutDropout) {
  test::ScratchDir dir("lora_train");
  write_initial_folder(dir.file("init"));
  const auto out_dir = dir.file("run");
  std::string out;
  ASSERT_EQ(test::run_train("tests/fixtures/train/tiny_golden.yaml",
                            "output_dir=" + out_dir + " lora_enable=true lora_dropout=0 lora_weights=" +
                                dir.file("init") + " --dump-first-step " + dir.file("step.safetensors"),
                            &out),
            0);
  const auto d = test::load_safetensors(dir.file("step.safetensors"));
  const double want_loss = lora_golden().get("train_nodropout.loss").item<double>();
  EXPECT_LE(std::abs(d.at("loss").item<double>() - want_loss) / want_loss, 1e-5);
  size_t grads = 0;
  double worst = 0;
  for (const auto& [name, t] : d) {
    if (name.rfind("grad.", 0) != 0) continue;
    SCOPED_TRACE(name);
    const auto want = lora_golden().get("train_nodropout.grad." + peft_name(name.substr(5)));
    const double diff = test::max_diff(t, want);
    EXPECT_LE(diff, 1e-4 * std::max(1.0, test::max_abs(want)));
    worst = std::max(worst, diff);
    ++grads;
  }
  EXPECT_EQ(grads, lora_golden().json["trainable_parameters"].size());  // adapters + abstractor, nothing else
  std::cout << "[lora] trainer step without dropout: grad max diff " << worst << "\n";

  for (const std::string sub : {"", "checkpoint-1/"})
    for (const char* file :
         {"adapter_config.json", "adapter_model.safetensors", "non_lora_trainables.bin", "config.json"})
      EXPECT_TRUE(fs::exists(out_dir + "/" + sub + file)) << sub << file;
  EXPECT_FALSE(fs::exists(out_dir + "/model.safetensors"));
  const auto config = nlohmann::json::parse(std::ifstream(out_dir + "/adapter_config.json"));
  EXPECT_EQ(config["r"], 8);
  EXPECT_EQ(config["lora_alpha"], 16);
  EXPECT_EQ(config["target_modules"].size(), 4u);
  EXPECT_TRUE(test::load_safetensors(out_dir + "/adapter_model.safetensors")
                  .count("base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight"));

  // The saved adapter serves: `qalign export --merge-lora` folds it into the base.
  ASSERT_EQ(test::run_command("'" + test::qalign_binary() + "' export --checkpoint " + test::fixture(kBase) +
                                  " --lora " + out_dir + " --merge-lora --dtype float32 --out " + dir.file("merged"),
                              &out),
            0)
      << out;
  auto merged = io::load_pretrained(dir.file("merged"));
  EXPECT_TRUE(model::lora_modules(*merged).empty());
}

// visual_abstractor_lr is a separate learning rate here (the authors' flag selects no parameter
// and does nothing): at 1e-7 the abstractor moves by ~1e-7 in the first Adam step, the adapters
// by ~lr = 1e-3.
TEST(LoraTrain, AbstractorLearningRateApplies) {
  test::ScratchDir dir("lora_abstractor_lr");
  std::string out;
  ASSERT_EQ(test::run_train(
                "tests/fixtures/train/tiny_golden.yaml",
                "output_dir=" + dir.path() + " lora_enable=true lora_r=4 lora_alpha=8 visual_abstractor_lr=1e-7", &out),
            0);
  const auto base = io::load_weights(test::fixture(kBase));
  const auto f = io::read_lora_folder(dir.path());
  ASSERT_FALSE(f.non_lora_trainables.empty());
  double abstractor_move = 0;
  for (const auto& [name, t] : f.non_lora_trainables)
    abstractor_move = std::max(abstractor_move, test::max_diff(t, base.at(name)));
  EXPECT_GT(abstractor_move, 0.0);
  EXPECT_LE(abstractor_move, 5e-7);  // 1e-7 plus float32 rounding of weights of magnitude ~1, far below 1e-3
  // B starts at zero, so its first step is ~lr everywhere it has a gradient.
  const auto b = f.adapters.at("model.layers.0.self_attn.q_proj.lora_B.weight");
  EXPECT_GT(test::max_abs(b), 0.5e-3);
  EXPECT_LE(test::max_abs(b), 1.01e-3);
}

// A LoRA run resumed from its checkpoint ends bit for bit where the uninterrupted run ends
// (dropout on: the generator state travels in the checkpoint).
TEST(LoraTrain, ResumedRunIsBitwiseIdentical) {
  test::ScratchDir a("lora_resume_a"), b("lora_resume_b");
  const std::string lora = " lora_enable=true lora_r=4 lora_alpha=8 lora_target_modules=[q,v,down]";
  std::string out;
  ASSERT_EQ(test::run_train("tests/fixtures/train/tiny_recipe.yaml", "output_dir=" + a.path() + lora, &out), 0);
  ASSERT_EQ(
      test::run_train("tests/fixtures/train/tiny_recipe.yaml",
                      "output_dir=" + b.path() + " resume_from_checkpoint=" + a.path() + "/checkpoint-2" + lora, &out),
      0);
  EXPECT_NE(out.find("resumed from"), std::string::npos) << out;
  for (const std::string file : {"adapter_model.safetensors", "checkpoint-4/optimizer.safetensors"}) {
    SCOPED_TRACE(file);
    const auto wa = test::load_safetensors(a.file(file)), wb = test::load_safetensors(b.file(file));
    ASSERT_EQ(wa.size(), wb.size());
    for (const auto& [name, t] : wa) EXPECT_TRUE(torch::equal(t, wb.at(name))) << name;
  }
  const auto adapters = test::load_safetensors(a.file("adapter_model.safetensors"));
  EXPECT_EQ(adapters.size(), 16u);  // 2 layers x (q, v.0, v.1, down) x (A, B)
}

// Activation checkpointing recomputes each block in backward: the LoRA dropout must redraw the
// masks of the forward pass, or the gradients belong to other masks.
TEST(LoraTrain, ActivationCheckpointingReplaysDropout) {
  test::ScratchDir dir("lora_ckpt");
  std::string out;
  io::StateDict dumps[2];
  for (int on = 0; on < 2; ++on) {
    const auto run = dir.file(on ? "on" : "off");
    ASSERT_EQ(test::run_train("tests/fixtures/train/tiny_golden.yaml",
                              "output_dir=" + run +
                                  " lora_enable=true lora_r=4 lora_alpha=8 lora_dropout=0.3 gradient_checkpointing=" +
                                  (on ? "true" : "false") + " --dump-first-step " + run + ".safetensors",
                              &out),
              0);
    dumps[on] = test::load_safetensors(run + ".safetensors");
  }
  ASSERT_EQ(dumps[0].size(), dumps[1].size());
  for (const auto& [name, t] : dumps[0]) {
    if (name.rfind("grad.", 0) != 0) continue;
    EXPECT_LE(test::max_diff(dumps[1].at(name), t), 1e-6 * std::max(1.0, test::max_abs(t))) << name;
  }
}

// `qalign score --lora` serves the authors' folder as builder.py does (applied, then merged): the
// image case from its file gives their merged model's level probabilities.
TEST(LoraScore, ScoreCommandAppliesTheFolder) {
  std::string out;
  ASSERT_EQ(
      test::run_command("'" + test::qalign_binary() + "' score --json --model " + test::fixture(kBase) + " --lora " +
                            test::fixture(kLoraFolder) + " " + test::fixture("qalign-tiny/inputs/img_wide.png"),
                        &out),
      0)
      << out;
  const auto line = out.substr(out.find('{'));
  const auto row = nlohmann::json::parse(line.substr(0, line.find('\n')));
  const auto want = lora_golden().get("merged.level_probs")[0];
  for (size_t k = 0; k < kLevelWords.size(); ++k)
    EXPECT_NEAR(row["probs"][kLevelWords[k]].get<double>(), want[k].item<double>(), 1e-5) << kLevelWords[k];
  EXPECT_NEAR(row["score01"].get<double>(), lora_golden().get("merged.score_scorer").item<double>(), 1e-5);
}

// tune_visual_abstractor false (the authors' l1_koniq_lora): the adapters alone train, and the
// folder's non_lora_trainables.bin is empty.
TEST(LoraTrain, AdaptersAloneWithoutTheAbstractor) {
  test::ScratchDir dir("lora_only");
  std::string out;
  ASSERT_EQ(test::run_train("tests/fixtures/train/tiny_golden.yaml",
                            "output_dir=" + dir.file("run") +
                                " lora_enable=true lora_r=4 lora_alpha=8 tune_visual_abstractor=false" +
                                " --dump-first-step " + dir.file("step.safetensors"),
                            &out),
            0);
  size_t grads = 0;
  for (const auto& [name, t] : test::load_safetensors(dir.file("step.safetensors")))
    if (name.rfind("grad.", 0) == 0) {
      EXPECT_TRUE(model::is_lora_parameter(name)) << name;
      ++grads;
    }
  EXPECT_EQ(grads, 8u);
  const auto f = io::read_lora_folder(dir.file("run"));
  EXPECT_EQ(f.adapters.size(), 8u);
  EXPECT_TRUE(f.non_lora_trainables.empty());
}
