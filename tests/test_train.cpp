// `qalign train` end to end on the tiny fixture: the authors' training step against their
// goldens (tests/fixtures/qalign-tiny/MANIFEST.md "Training golden"), activation checkpointing,
// bit-exact resume, checkpoint layout and rotation, and the non-finite step guard.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "qalign/io/safetensors.h"
#include "qalign/io/weights.h"
#include "qalign/tokenizer.h"
#include "tests/support/fixtures.h"
#include "tests/support/goldens.h"
#include "tests/support/tiny_golden.h"
#include "train/checkpointing.h"

using namespace qalign;
namespace fs = std::filesystem;

namespace {

// A fresh folder for one test's runs.
std::string scratch(const std::string& name) {
  const auto dir = fs::path(testing::TempDir()) / ("qalign_test_train_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

const std::string kGoldenRecipe = "tests/fixtures/train/tiny_golden.yaml";

std::vector<nlohmann::json> logged_metrics(const std::string& output_dir) {
  return test::read_jsonl(output_dir + "/metrics.jsonl");
}

// A dumped first step's batch through the fixture model's own forward (eval mode, no grad): the
// spliced inputs and the decoder's output [B,L,E].
std::pair<model::MultimodalInputs, torch::Tensor> replay(model::Owl2ForCausalLM& m, const io::StateDict& step) {
  m->eval();
  torch::NoGradGuard no_grad;
  const auto pixels = step.at("pixel_values");  // [B,1,3,S,S]
  const auto tokens = m->model->encode_images(pixels.flatten(0, 1));
  std::vector<torch::Tensor> visual;
  for (int64_t b = 0; b < pixels.size(0); ++b) visual.push_back(tokens[b]);
  auto in =
      m->model->splice(step.at("input_ids"), visual, step.at("attention_mask").to(torch::kBool), step.at("labels"));
  auto hidden = m->model(in);
  return {std::move(in), std::move(hidden)};
}

// The position whose output predicts sample b's level word, found here by scanning its labels.
int64_t level_position(const model::MultimodalInputs& in, int64_t b) {
  static const auto level_ids = Tokenizer(test::fixture("qalign-tiny/model")).level_token_ids();
  int64_t t = 1;
  while (std::find(level_ids.begin(), level_ids.end(), in.labels[b][t].item<int64_t>()) == level_ids.end()) ++t;
  return t - 1;
}

// The first step through `qalign train`, dumped, plus the model it wrote.
struct GoldenRun {
  io::StateDict dump, after;
};

GoldenRun run_golden_step(const std::string& name, const std::string& extra) {
  const auto dir = scratch(name);
  std::string out;
  EXPECT_EQ(
      test::run_train(kGoldenRecipe,
                      "output_dir=" + dir + " " + extra + " --dump-first-step " + dir + "/step.safetensors", &out),
      0);
  return {test::load_safetensors(dir + "/step.safetensors"),
          test::load_safetensors(dir + "/checkpoint-1/model.safetensors")};
}

std::vector<std::string> parameter_names() {
  std::vector<std::string> names;
  for (const auto& [name, info] : test::tiny_golden().json["state_dict"].items())
    if (test::tiny_golden().tensors->contains("train.grad." + name)) names.push_back(name);
  return names;
}

}  // namespace

TEST(TrainGolden, OneAdamWStepMatchesTheAuthors) {
  const auto run = run_golden_step("golden", "");
  const auto& d = run.dump;
  EXPECT_TRUE(torch::equal(d.at("input_ids"), test::tiny_golden().get("train.input_ids")));
  EXPECT_TRUE(torch::equal(d.at("labels"), test::tiny_golden().get("train.labels")));
  EXPECT_TRUE(torch::equal(d.at("attention_mask"), test::tiny_golden().get("train.attention_mask")));
  const double pixel_diff = test::max_diff(d.at("pixel_values"), test::tiny_golden().get("train.pixel_values"));
  EXPECT_LE(pixel_diff, 1e-5);

  const double loss = d.at("loss").item<double>(), want = test::tiny_golden().get("train.loss").item<double>();
  const double loss_rel = std::abs(loss - want) / std::abs(want);
  EXPECT_LE(loss_rel, 1e-5) << loss << " vs " << want;

  const auto names = parameter_names();
  EXPECT_EQ(names.size(), 108u);
  double worst_grad = 0;
  std::string worst_grad_name;
  for (const auto& name : names) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(d.count("grad." + name));
    const auto want_grad = test::tiny_golden().get("train.grad." + name);
    const double tol = 1e-4 * std::max(1.0, test::max_abs(want_grad));
    const double diff = test::max_diff(d.at("grad." + name), want_grad);
    EXPECT_LE(diff, tol);
    if (diff / tol > worst_grad) worst_grad = diff / tol, worst_grad_name = name;
  }

  // MANIFEST: the first Adam step moves each element by about lr · sign(grad), so an element whose
  // gradient is ~0 may differ by up to lr; those are held to 1e-3, the rest to 1e-5.
  double worst_param = 0, worst_tiny = 0;
  for (const auto& name : test::tiny_golden().json["train"]["tracked_params"]) {
    const std::string n = name.get<std::string>();
    SCOPED_TRACE(n);
    const auto want_param = test::tiny_golden().get("train.after_adamw." + n).to(torch::kFloat64);
    const auto got = run.after.at(n).to(torch::kFloat64);
    const auto tiny = test::tiny_golden().get("train.grad." + n).abs() < 1e-6;
    const auto diff = (got - want_param).abs();
    const double regular = diff.masked_fill(tiny, 0).max().item<double>();
    const double near_zero = diff.masked_fill(tiny.logical_not(), 0).max().item<double>();
    EXPECT_LE(regular, 1e-5);
    EXPECT_LE(near_zero, 1e-3);
    worst_param = std::max(worst_param, regular);
    worst_tiny = std::max(worst_tiny, near_zero);
  }
  std::cout << "[golden] pixel max diff " << pixel_diff << ", loss " << loss << " (rel diff " << loss_rel
            << "), worst grad diff " << worst_grad << " of its tolerance (" << worst_grad_name
            << "), after-AdamW max diff " << worst_param << " (|grad| < 1e-6 elements: " << worst_tiny << ")\n";
}

TEST(TrainGolden, ActivationCheckpointingKeepsGradients) {
  const auto off = run_golden_step("ckpt_off", "gradient_checkpointing=false");
  const auto on = run_golden_step("ckpt_on", "gradient_checkpointing=true");
  EXPECT_EQ(on.dump.at("loss").item<float>(), off.dump.at("loss").item<float>());
  double worst = 0;
  for (const auto& name : parameter_names()) {
    SCOPED_TRACE(name);
    const double diff = test::max_diff(on.dump.at("grad." + name), off.dump.at("grad." + name));
    EXPECT_LE(diff, 1e-6);
    worst = std::max(worst, diff);
  }
  std::cout << "[checkpointing] max gradient diff on vs off: " << worst << "\n";
}

namespace {

// 2N steps in one run, and the same recipe resumed from its step-N checkpoint for N more (N = 2):
// identical losses, gradient norms, weights and optimizer moments, bit for bit. The recipe is
// shuffled, length-grouped, cosine with warm-up, accumulating, clipping and checkpointing
// activations; step N ends mid-epoch and the resumed steps cross into the next epoch.
void expect_bitwise_resume(const std::string& tag, const std::string& extra) {
  const auto a = scratch(tag + "_a"), b = scratch(tag + "_b");
  std::string out;
  ASSERT_EQ(test::run_train(test::kTinyRecipe, "output_dir=" + a + " " + extra, &out), 0);
  const auto state = nlohmann::json::parse(std::ifstream(a + "/checkpoint-2/trainer_state.json"));
  EXPECT_EQ(state["epoch"], 0);
  EXPECT_EQ(state["position"], 4);  // of 5 samples
  ASSERT_EQ(test::run_train(test::kTinyRecipe,
                            "output_dir=" + b + " resume_from_checkpoint=" + a + "/checkpoint-2 " + extra, &out),
            0);
  EXPECT_NE(out.find("resumed from"), std::string::npos) << out;

  const auto ma = logged_metrics(a), mb = logged_metrics(b);
  ASSERT_EQ(ma.size(), 4u);
  ASSERT_EQ(mb.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(mb[i]["step"], ma[i + 2]["step"]);
    EXPECT_EQ(mb[i]["epoch"].get<double>(), ma[i + 2]["epoch"].get<double>());
    EXPECT_EQ(mb[i]["loss"].get<double>(), ma[i + 2]["loss"].get<double>());
    EXPECT_EQ(mb[i]["grad_norm"].get<double>(), ma[i + 2]["grad_norm"].get<double>());
    EXPECT_EQ(mb[i]["lr"].get<double>(), ma[i + 2]["lr"].get<double>());
  }
  for (const std::string file : {"model.safetensors", "checkpoint-4/model.safetensors",
                                 "checkpoint-4/optimizer.safetensors", "checkpoint-4/rng_state.safetensors"}) {
    SCOPED_TRACE(file);
    const auto wa = test::load_safetensors(a + "/" + file), wb = test::load_safetensors(b + "/" + file);
    ASSERT_EQ(wa.size(), wb.size());
    for (const auto& [name, t] : wa) EXPECT_TRUE(torch::equal(t, wb.at(name))) << name;
  }
  // The weights did move.
  const auto start = test::load_safetensors(test::fixture("qalign-tiny/model/model.safetensors"));
  EXPECT_FALSE(torch::equal(start.at("lm_head.weight"),
                            test::load_safetensors(a + "/model.safetensors").at("lm_head.weight").to(torch::kFloat32)));
}

}  // namespace

TEST(TrainResume, ResumedRunIsBitwiseIdentical) { expect_bitwise_resume("resume", ""); }

// bfloat16 compute: the float32 masters travel in the checkpoint, so resuming is exact too.
TEST(TrainResume, ResumedBf16RunIsBitwiseIdentical) { expect_bitwise_resume("resume_bf16", "bf16=true"); }

TEST(TrainCheckpoints, HuggingFaceLayoutAndRotation) {
  const auto dir = scratch("rotation");
  std::string out;
  ASSERT_EQ(
      test::run_train(test::kTinyRecipe,
                      "output_dir=" + dir + " max_steps=3 save_steps=1 save_total_limit=2 gradient_checkpointing=false",
                      &out),
      0);
  EXPECT_FALSE(fs::exists(dir + "/checkpoint-1"));
  ASSERT_TRUE(fs::exists(dir + "/checkpoint-2"));
  ASSERT_TRUE(fs::exists(dir + "/checkpoint-3"));
  for (const auto& e : fs::directory_iterator(dir))  // no temporary folder left behind
    EXPECT_NE(e.path().filename().string().front(), '.') << e.path();
  for (const char* f :
       {"model.safetensors", "config.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
        "preprocessor_config.json", "trainer_state.json", "optimizer.safetensors", "rng_state.safetensors"})
    EXPECT_TRUE(fs::exists(dir + "/checkpoint-3/" + f)) << f;
  const auto state = nlohmann::json::parse(std::ifstream(dir + "/checkpoint-3/trainer_state.json"));
  EXPECT_EQ(state["global_step"], 3);
  EXPECT_EQ(state["lr_schedule"]["total_steps"], 3);
  // A checkpoint is a model folder the rest of qalign loads.
  auto m = io::load_pretrained(dir + "/checkpoint-3");
  EXPECT_TRUE(torch::equal(m->lm_head->weight,
                           test::load_safetensors(dir + "/checkpoint-3/model.safetensors").at("lm_head.weight")));
  const auto lines = logged_metrics(dir);
  ASSERT_EQ(lines.size(), 3u);
  for (const char* key :
       {"step", "epoch", "loss", "grad_norm", "lr", "samples_per_s", "tokens_per_s", "ms_per_step", "peak_memory_mib"})
    EXPECT_TRUE(lines.back().contains(key)) << key;
  EXPECT_NE(out.find("step 3/3 | epoch"), std::string::npos) << out;
}

namespace {

// Records in the authors' format; "cutoff" is text whose question runs past model_max_length, so
// its answer is cut off, every label is ignored and its loss is 0/0 = NaN.
std::string write_records(const std::string& dir, const std::vector<std::string>& kinds) {
  nlohmann::json records = nlohmann::json::array();
  for (size_t i = 0; i < kinds.size(); ++i) {
    const bool cutoff = kinds[i] == "cutoff";
    std::string question = "Rate the quality of this image.\n<|image|>";
    if (cutoff) {
      question.clear();
      for (int w = 0; w < 2100; ++w) question += "rate ";
    }
    nlohmann::json record = {{"id", kinds[i] + std::to_string(i)},
                             {"conversations",
                              {{{"from", "human"}, {"value", question}},
                               {{"from", "gpt"}, {"value", "The quality of the image is good."}}}}};
    if (!cutoff) record["image"] = "img_wide.png";
    records.push_back(record);
  }
  const auto path = dir + "/records.json";
  std::ofstream(path) << records.dump();
  return path;
}

}  // namespace

TEST(TrainGuard, NonFiniteStepIsSkipped) {
  const auto dir = scratch("nonfinite");
  const auto data = write_records(dir, {"good", "cutoff", "good"});
  std::string out;
  ASSERT_EQ(test::run_train(
                kGoldenRecipe,
                "output_dir=" + dir + "/run data_path=" + data + " per_device_train_batch_size=1 max_steps=3", &out),
            0);
  EXPECT_NE(out.find("step 2: non-finite loss"), std::string::npos) << out;
  EXPECT_NE(out.find("cutoff1"), std::string::npos) << out;
  const auto lines = logged_metrics(dir + "/run");
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["nonfinite_steps"], 0);
  EXPECT_EQ(lines[1]["nonfinite_steps"], 1);
  const auto w1 = test::load_safetensors(dir + "/run/checkpoint-1/model.safetensors"),
             w2 = test::load_safetensors(dir + "/run/checkpoint-2/model.safetensors"),
             w3 = test::load_safetensors(dir + "/run/checkpoint-3/model.safetensors");
  for (const auto& [name, t] : w1) EXPECT_TRUE(torch::equal(t, w2.at(name))) << name;
  EXPECT_FALSE(torch::equal(w2.at("lm_head.weight"), w3.at("lm_head.weight")));
  EXPECT_TRUE(torch::isfinite(w3.at("lm_head.weight")).all().item<bool>());
}

TEST(TrainGuard, StopsAfterTooManyNonFiniteStepsInARow) {
  const auto dir = scratch("nonfinite_stop");
  const auto data = write_records(dir, {"good", "cutoff", "cutoff", "good"});
  std::string out;
  EXPECT_NE(test::run_train(kGoldenRecipe,
                            "output_dir=" + dir + "/run data_path=" + data +
                                " per_device_train_batch_size=1 max_steps=4 max_nonfinite_steps=2",
                            &out),
            0);
  EXPECT_NE(out.find("stopping after 2 steps in a row with a non-finite loss or gradient (steps 2 to 3; samples: "
                     "cutoff1, cutoff2)"),
            std::string::npos)
      << out;
}

TEST(TrainFreezing, FrozenPartsKeepTheirWeights) {
  const auto run = run_golden_step("freeze", "freeze_vision_model=true tune_language_model=false");
  const auto start = test::load_safetensors(test::fixture("qalign-tiny/model/model.safetensors"));
  size_t grads = 0;
  for (const auto& [name, t] : run.after) {
    SCOPED_TRACE(name);
    const bool abstractor = name.rfind("model.visual_abstractor.", 0) == 0;
    const bool buffer = name.find("pos_embed") != std::string::npos;
    EXPECT_EQ(run.dump.count("grad." + name) > 0, abstractor && !buffer);
    grads += run.dump.count("grad." + name);
    if (!abstractor || buffer) EXPECT_TRUE(torch::equal(t, start.at(name)));
  }
  EXPECT_EQ(grads, 48u);  // the abstractor's parameters
  EXPECT_FALSE(torch::equal(run.after.at("model.visual_abstractor.query_embeds"),
                            start.at("model.visual_abstractor.query_embeds")));
}

// eval_steps: the run scores eval_data_paths at steps 2 and 4, logs the agreement, keeps the best
// model in output_dir/best, and its last evaluation equals `qalign eval` on the final model.
TEST(TrainEval, EvaluatesDuringTrainingAndKeepsTheBest) {
  const auto dir = scratch("eval");
  const std::string test_file = dir + "/fixture_set.json";
  std::ofstream(test_file) << R"([{"image": "img_wide.png", "gt_score": 3.5},
    {"image": "img_tall.jpg", "gt_score": 1.25}, {"image": "img_big.png", "gt_score": 4.0},
    {"image": "img_wide.png", "gt_score": 2.0}])";
  std::string out;
  ASSERT_EQ(
      test::run_train(test::kTinyRecipe, "output_dir=" + dir + "/run eval_steps=2 eval_data_paths=" + test_file, &out),
      0);

  std::map<int64_t, double> srcc;
  for (const auto& j : logged_metrics(dir + "/run"))
    if (j.contains("eval_fixture_set_srcc")) {
      EXPECT_EQ(j["eval_fixture_set_n"], 4);
      srcc[j["step"].get<int64_t>()] = j["eval_fixture_set_srcc"].get<double>();
    }
  ASSERT_EQ(srcc.size(), 2u) << out;
  ASSERT_TRUE(srcc.count(2) && srcc.count(4));

  const auto best = nlohmann::json::parse(std::ifstream(dir + "/run/best/best.json"));
  const int64_t best_step = srcc.at(4) > srcc.at(2) ? 4 : 2;
  EXPECT_EQ(best["step"].get<int64_t>(), best_step);
  EXPECT_DOUBLE_EQ(best["value"].get<double>(), srcc.at(best_step));
  EXPECT_TRUE(fs::exists(dir + "/run/best/model.safetensors"));

  ASSERT_EQ(test::run_command(test::qalign_binary() + " eval --model " + dir + "/run --data " + test_file +
                                  " --image-folder " + test::fixture("qalign-tiny/inputs") + " --out " + dir + "/eval",
                              &out),
            0)
      << out;
  const auto results = nlohmann::json::parse(std::ifstream(dir + "/eval/results.json"));
  EXPECT_NEAR(results["fixture_set"]["srcc"].get<double>(), srcc.at(4), 1e-9);
}

// level_labels: soft adds soft_label_weight · KL(p ‖ q) to the token loss; q is recomputed here
// from the dumped batch through the model's own forward, with the KL in double precision.
TEST(TrainSoftLabels, LossIsTokenLossPlusWeightedKlOnTheLevelLogits) {
  const auto dir = scratch("soft");
  auto records = nlohmann::json::parse(std::ifstream(test::fixture("qalign-tiny/inputs/train.json")));
  const std::vector<std::vector<double>> targets = {{0.1, 0.6, 0.3, 0.0, 0.0}, {0.0, 0.05, 0.25, 0.5, 0.2}};
  for (size_t i = 0; i < records.size(); ++i) records[i]["level_probs"] = targets[i];
  const std::string soft_json = dir + "/soft.json";
  std::ofstream(soft_json) << records.dump();

  std::string out;
  ASSERT_EQ(test::run_train(kGoldenRecipe, "output_dir=" + dir + "/hard --dump-first-step " + dir + "/hard.safetensors",
                            &out),
            0);
  ASSERT_EQ(
      test::run_train(kGoldenRecipe,
                      "output_dir=" + dir + "/soft data_path=" + soft_json +
                          " level_labels=soft soft_label_weight=0.5 --dump-first-step " + dir + "/soft.safetensors",
                      &out),
      0);
  const auto hard = test::load_safetensors(dir + "/hard.safetensors"),
             soft = test::load_safetensors(dir + "/soft.safetensors");
  ASSERT_TRUE(torch::equal(hard.at("input_ids"), soft.at("input_ids")));

  auto m = io::load_pretrained(test::fixture("qalign-tiny/model"));
  const auto [in, hidden] = replay(m, soft);
  const auto level_ids = Tokenizer(test::fixture("qalign-tiny/model")).level_token_ids();
  torch::NoGradGuard no_grad;
  double kl = 0;
  for (int64_t b = 0; b < in.labels.size(0); ++b) {
    const auto logits = m->logits(hidden[b][level_position(in, b)]).to(torch::kFloat64);
    std::vector<double> z;
    for (auto id : level_ids) z.push_back(logits[id].item<double>());
    const double zmax = *std::max_element(z.begin(), z.end());
    double norm = 0;
    for (double v : z) norm += std::exp(v - zmax);
    for (size_t k = 0; k < z.size(); ++k) {
      const double p = targets[static_cast<size_t>(b)][k];
      if (p > 0) kl += p * (std::log(p) - (z[k] - zmax - std::log(norm)));
    }
  }
  kl /= static_cast<double>(in.labels.size(0));
  const double got = soft.at("loss").item<double>() - hard.at("loss").item<double>();
  EXPECT_GT(kl, 0.1);
  EXPECT_NEAR(got, 0.5 * kl, 1e-5 * soft.at("loss").item<double>());

  // Without level_probs a soft run names the record it cannot train.
  EXPECT_NE(test::run_train(kGoldenRecipe, "output_dir=" + dir + "/missing level_labels=soft", &out), 0);
  EXPECT_NE(out.find("level_probs"), std::string::npos) << out;
}

// answer_format: regression (the ablation's third arm) fits a zero-initialised score head on the
// hidden state that predicts the level word to the records' MOS by squared error. With the head
// at zero the first loss is mean(MOS²), the bias gradient -2·mean(MOS) and the weight gradient
// -2·mean(MOS·h), h recomputed here through the model's own forward.
TEST(TrainAblation, RegressionHeadLossAndGradients) {
  const auto dir = scratch("regression");
  auto records = nlohmann::json::parse(std::ifstream(test::fixture("qalign-tiny/inputs/train.json")));
  const std::vector<double> mos = {3.5, 1.75};
  for (size_t i = 0; i < records.size(); ++i) records[i]["gt_score"] = mos[i];
  const std::string data = dir + "/scored.json";
  std::ofstream(data) << records.dump();

  std::string out;
  ASSERT_EQ(test::run_train(kGoldenRecipe,
                            "output_dir=" + dir + "/run data_path=" + data +
                                " answer_format=regression --dump-first-step " + dir + "/step.safetensors",
                            &out),
            0);
  const auto step = test::load_safetensors(dir + "/step.safetensors");
  EXPECT_NEAR(step.at("loss").item<double>(), (3.5 * 3.5 + 1.75 * 1.75) / 2, 1e-5);
  EXPECT_NEAR(step.at("grad.score_head.bias").item<double>(), -(3.5 + 1.75), 1e-5);
  EXPECT_EQ(step.count("grad.lm_head.weight"), 0u) << "no token loss: the output layer takes no part";
  EXPECT_EQ(test::max_abs(step.at("grad.model.norm.weight")), 0.0) << "only the head learns while it is zero";

  auto m = io::load_pretrained(test::fixture("qalign-tiny/model"));
  const auto [in, hidden] = replay(m, step);
  auto expected = torch::zeros({hidden.size(-1)}, torch::kFloat64);
  for (int64_t b = 0; b < in.labels.size(0); ++b)
    expected += -2.0 * mos[static_cast<size_t>(b)] * hidden[b][level_position(in, b)].to(torch::kFloat64) / 2.0;
  EXPECT_LT(test::max_diff(step.at("grad.score_head.weight").flatten(), expected), 1e-5 * test::max_abs(expected));

  // The written model carries its head, and the regression readout scores with it.
  const auto trained = io::load_pretrained(dir + "/run");
  ASSERT_TRUE(trained->score_head);
  EXPECT_NE(trained->score_head->bias.item<double>(), 0.0);
  const std::string test_file = dir + "/test.json";
  std::ofstream(test_file)
      << R"([{"image": "img_wide.png", "gt_score": 3.5}, {"image": "img_big.png", "gt_score": 1.75}])";
  ASSERT_EQ(test::run_command(test::qalign_binary() + " eval --readout regression --model " + dir + "/run --data " +
                                  test_file + " --image-folder " + test::fixture("qalign-tiny/inputs") + " --out " +
                                  dir + "/eval",
                              &out),
            0)
      << out;
  std::ifstream predictions(dir + "/eval/predictions.jsonl");
  std::string line;
  ASSERT_TRUE(std::getline(predictions, line));
  const auto first = nlohmann::json::parse(line);
  EXPECT_NEAR(first["score01"].get<double>(), (first["score"].get<double>() - 1) / 4, 1e-6);

  // Records without a MOS cannot be regressed: the run names the field.
  EXPECT_NE(test::run_train(kGoldenRecipe, "output_dir=" + dir + "/nomos answer_format=regression", &out), 0);
  EXPECT_NE(out.find("gt_score"), std::string::npos) << out;
  // A model without a head has no regression readout.
  EXPECT_NE(test::run_command(test::qalign_binary() + " eval --readout regression --model " +
                                  test::fixture("qalign-tiny/model") + " --data " + test_file + " --image-folder " +
                                  test::fixture("qalign-tiny/inputs") + " --out " + dir + "/eval2",
                              &out),
            0);
  EXPECT_NE(out.find("score_head"), std::string::npos) << out;
}

// SIGKILL at random moments of a run that saves a checkpoint every step, 20 times in a row, each
// restart resuming from `latest`: every restart finds an intact checkpoint (output_dir/latest
// names one that passes validation), resumes from it and makes progress; a final uninterrupted
// run finishes. Damage to the newest checkpoint is reported and the one before it used.
TEST(TrainCrashSafety, KilledAtRandomMomentsResumesFromAnIntactCheckpoint) {
  const auto dir = scratch("sigkill");
  const std::string run = dir + "/run";
  std::mt19937 rng(20261126);
  const std::string base = "output_dir=" + run + " max_steps=100000 save_steps=1 save_total_limit=3";
  int64_t last_step = -1;
  int resumed = 0;
  // A loaded machine starts slower: each kill that lands before the resume moves the window later.
  double earliest = 0.8;
  for (int i = 0; i < 20; ++i) {
    SCOPED_TRACE("kill " + std::to_string(i));
    const bool has_latest = fs::exists(run + "/latest");
    const double seconds = earliest + static_cast<double>(rng() % 1600) / 1000.0;
    std::string out;
    const auto cmd = "cd '" + test::source_dir() + "' && timeout -s KILL " + std::to_string(seconds) + " '" +
                     test::qalign_binary() + "' train --config " + test::kTinyRecipe + " " + base +
                     // Killed before its first checkpoint, a run leaves a folder with nothing to resume:
                     // start afresh there, as a user would.
                     (has_latest ? " resume_from_checkpoint=latest" : " overwrite_output_dir=true");
    const int rc = test::run_command(cmd, &out);
    ASSERT_EQ(rc, 137) << "the run ended by itself instead of being killed:\n" << out;
    // A kill during start-up comes before the resume (or before the first checkpoint); the next
    // restart tries again, later.
    if (has_latest && out.find("resumed from") != std::string::npos)
      ++resumed;
    else if (has_latest)
      earliest += 0.4;
    if (!fs::exists(run + "/latest")) {
      earliest += 0.4;
      continue;
    }
    std::ifstream pointer(run + "/latest");
    std::string named;
    std::getline(pointer, named);
    const auto newest = run + "/" + named;
    EXPECT_FALSE(train::checkpoint_problem(newest).has_value()) << newest << ": " << *train::checkpoint_problem(newest);
    EXPECT_EQ(train::resolve_resume_dir("latest", run), newest);
    const int64_t step = std::stoll(named.substr(std::string("checkpoint-").size()));
    EXPECT_GE(step, last_step) << "a restart lost saved progress";
    last_step = step;
  }
  EXPECT_GE(resumed, 10);
  EXPECT_GT(last_step, 0);

  // The newest checkpoint damaged (its optimizer state truncated): reported, the one before used.
  const auto all = train::list_checkpoints(run);
  ASSERT_GE(all.size(), 2u);
  fs::resize_file(all.back().second + "/optimizer.safetensors", 100);
  EXPECT_EQ(train::resolve_resume_dir("latest", run), all[all.size() - 2].second);
  std::string out;
  ASSERT_EQ(test::run_train(test::kTinyRecipe,
                            "output_dir=" + run + " max_steps=" + std::to_string(all.back().first + 2) +
                                " save_steps=1 resume_from_checkpoint=latest",
                            &out),
            0);
  EXPECT_NE(out.find("cannot resume from " + all.back().second), std::string::npos) << out;
  EXPECT_NE(out.find("resumed from " + all[all.size() - 2].second), std::string::npos) << out;
}
