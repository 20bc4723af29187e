// The model against the authors' own forward pass on the tiny random-weight fixture: every stage
// of every inference case, fed the golden pixel values and ids (preprocessing and tokenisation
// have their own tests). Tolerances from tests/fixtures/qalign-tiny/MANIFEST.md. With
// QALIGN_TEST_DEVICE=cuda the model runs on the GPU and the same tolerances apply.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "qalign/io/checkpoint.h"
#include "qalign/io/safetensors.h"
#include "qalign/io/weights.h"
#include "qalign/model/owl2.h"
#include "qalign/scoring.h"
#include "tests/support/fixtures.h"
#include "tests/support/goldens.h"
#include "tests/support/tiny_golden.h"

using namespace qalign;

namespace {

std::vector<int64_t> level_ids() { return test::tiny_golden().json["preferential_ids"].get<std::vector<int64_t>>(); }

struct CaseRun {
  torch::Tensor vision, abstractor;
  model::MultimodalInputs inputs;
  std::vector<torch::Tensor> hidden;
  torch::Tensor logits_last;
};

// The fixture model in `sub` on the test device.
model::Owl2ForCausalLM tiny(const std::string& sub, torch::ScalarType dtype = torch::kFloat32) {
  auto m = io::load_pretrained(test::fixture("qalign-tiny/" + sub), dtype);
  m->to(test::test_device());
  return m;
}

// Runs one golden case through `m` (on its device; results come back to the CPU): images are one
// block per sample, a video one block of frames.
CaseRun run_case(model::Owl2ForCausalLM& m, const std::string& c) {
  torch::NoGradGuard no_grad;
  CaseRun r;
  const auto device = m->lm_head->weight.device();
  const auto pixels = test::tiny_golden().get(c + ".pixel_values").to(device);
  const auto ids = test::tiny_golden().get(c + ".input_ids").to(device);
  r.vision = m->model->vision_model(pixels.to(m->model->embed_tokens->weight.scalar_type()));
  r.abstractor = m->model->visual_abstractor(r.vision);
  std::vector<torch::Tensor> visual;
  if (ids.size(0) == pixels.size(0)) {
    for (int64_t b = 0; b < ids.size(0); ++b) visual.push_back(r.abstractor[b]);
  } else {
    visual.push_back(r.abstractor.reshape({-1, r.abstractor.size(-1)}));  // frames in order
  }
  r.inputs = m->model->splice(ids, visual);
  r.hidden.clear();
  m->model->forward(r.inputs, &r.hidden);
  r.logits_last = m->last_logits(r.inputs);
  const auto cpu = torch::Device(torch::kCPU);
  r.vision = r.vision.to(cpu);
  r.abstractor = r.abstractor.to(cpu);
  r.inputs.embeds = r.inputs.embeds.to(cpu);
  r.inputs.modality = r.inputs.modality.to(cpu);
  for (auto& h : r.hidden) h = h.to(cpu);
  r.logits_last = r.logits_last.to(cpu);
  return r;
}

const std::vector<std::string>& inference_cases() {
  static const std::vector<std::string> c = {
      "image.img_wide", "image.img_tall", "image.img_big", "aesthetic.img_wide", "model_score_prompt.img_tall",
      "batch2",         "video"};
  return c;
}

void expect_case_matches(model::Owl2ForCausalLM& m, const std::string& c) {
  SCOPED_TRACE(c);
  const auto r = run_case(m, c);
  EXPECT_LE(test::max_diff(r.vision, test::tiny_golden().get(c + ".vision.last_hidden_state")), 1e-4);
  EXPECT_LE(test::max_diff(r.abstractor, test::tiny_golden().get(c + ".abstractor.last_hidden_state")), 1e-4);
  EXPECT_LE(test::max_diff(r.inputs.embeds, test::tiny_golden().get(c + ".llm.inputs_embeds")), 1e-4);
  EXPECT_TRUE(torch::equal(r.inputs.modality, test::tiny_golden().get(c + ".llm.modality_indicators")));
  ASSERT_EQ(r.hidden.size(), static_cast<size_t>(m->config.num_hidden_layers + 1));
  for (size_t i = 0; i < r.hidden.size(); ++i)
    EXPECT_LE(test::max_diff(r.hidden[i], test::tiny_golden().get(c + ".llm.hidden_states." + std::to_string(i))), 1e-4)
        << i;
  EXPECT_LE(test::max_diff(r.logits_last, test::tiny_golden().get(c + ".logits_last")), 1e-3);
  const auto scores = score_from_logits(r.logits_last, level_ids());
  EXPECT_LE(test::max_diff(scores.probs, test::tiny_golden().get(c + ".level_probs")), 1e-5);
  EXPECT_LE(test::max_diff(scores.score5, test::tiny_golden().get(c + ".score_model")), 1e-5);
  EXPECT_LE(test::max_diff(scores.score01, test::tiny_golden().get(c + ".score_scorer")), 1e-5);
}

}  // namespace

class ModelParity : public ::testing::TestWithParam<std::string> {};

TEST_P(ModelParity, EveryCaseEveryStage) {
  auto m = tiny(GetParam());
  for (const auto& c : inference_cases()) expect_case_matches(m, c);
}

// The same weights from model.safetensors, pytorch_model.bin and the sharded folder.
INSTANTIATE_TEST_SUITE_P(WeightForms, ModelParity, ::testing::Values("model", "model-sharded"));

TEST(ModelParity, WeightsFromTorchBin) {
  auto m = io::load_pretrained(test::fixture("qalign-tiny/model"));
  io::load_state_dict(*m, io::load_weights(test::fixture("qalign-tiny/model/pytorch_model.bin")), "pytorch_model.bin");
  m->to(test::test_device());
  for (const auto& c : inference_cases()) expect_case_matches(m, c);
}

TEST(ModelParity, FullLogitsOfFirstCase) {
  auto m = tiny("model");
  const auto r = run_case(m, "image.img_wide");
  torch::NoGradGuard g;
  EXPECT_LE(test::max_diff(m->logits(r.hidden.back().to(m->lm_head->weight.device())).cpu(),
                           test::tiny_golden().get("image.img_wide.logits")),
            1e-3);
}

// The level readout computes the five level words' logits from their rows of lm_head alone: the
// full logits' five columns, to within the order a product sums in.
TEST(ModelParity, LevelLogitsFromTheirRowsEqualTheFullLogitsColumns) {
  auto m = tiny("model");
  const auto r = run_case(m, "batch2");
  torch::NoGradGuard g;
  const auto hidden = r.hidden.back().to(m->lm_head->weight.device());
  const auto ids = torch::tensor(level_ids(), torch::kInt64).to(hidden.device());
  const auto rows = m->logits(hidden, ids).cpu();
  EXPECT_EQ(rows.sizes(), (std::vector<int64_t>{hidden.size(0), hidden.size(1), 5}));
  EXPECT_LE(test::max_diff(rows, m->logits(hidden).index_select(-1, ids).cpu()), 1e-5);
  EXPECT_LE(test::max_diff(score_from_level_logits(rows.select(1, -1)).probs,
                           score_from_logits(r.logits_last.cpu(), level_ids()).probs),
            1e-5);
}

TEST(ModelParity, BatchEqualsSingleRuns) {
  auto m = tiny("model");
  const auto batch = run_case(m, "batch2");
  const auto wide = run_case(m, "image.img_wide");
  const auto tall = run_case(m, "image.img_tall");
  EXPECT_LE(test::max_diff(batch.logits_last[0], wide.logits_last[0]), 1e-5);
  EXPECT_LE(test::max_diff(batch.logits_last[1], tall.logits_last[0]), 1e-5);
}

TEST(ModelParity, BFloat16AgreesWithFloat32) {
  auto m32 = tiny("model");
  auto m16 = tiny("model", torch::kBFloat16);
  for (const auto& c : {"image.img_wide", "video"}) {
    const auto a = score_from_logits(run_case(m32, c).logits_last, level_ids());
    const auto b = score_from_logits(run_case(m16, c).logits_last, level_ids());
    EXPECT_LE(test::max_diff(a.probs, b.probs), 2e-2) << c;
  }
}

TEST(ModelParity, Released7BConfigOnMetaDevice) {
  model::Owl2ForCausalLM m(model::ModelConfig::owl2_7b(),
                           torch::TensorOptions().device(torch::kMeta).dtype(torch::kBFloat16));
  int64_t vision = 0, abstractor = 0, total = 0, buffers = 0;
  for (const auto& p : m->named_parameters()) {
    total += p.value().numel();
    if (p.key().rfind("model.vision_model.", 0) == 0) vision += p.value().numel();
    if (p.key().rfind("model.visual_abstractor.", 0) == 0) abstractor += p.value().numel();
  }
  for (const auto& b : m->named_buffers()) buffers += b.value().numel();
  // SPEC.md §1.1: vision 303.97 M, abstractor 81.47 M, 8.198 B parameters in all; the
  // abstractor's position tables add 6.69 M buffer elements on top.
  EXPECT_NEAR(vision / 1e6, 303.97, 0.01);
  EXPECT_NEAR(abstractor / 1e6, 81.47, 0.01);
  EXPECT_NEAR(total / 1e9, 8.198, 0.001);
  EXPECT_EQ(buffers, 6 * (64 + 1025) * 1024);
  // 894 checkpoint keys = parameters + abstractor buffers + 32 rotary inv_freq buffers we recompute.
  EXPECT_EQ(m->named_parameters().size() + m->named_buffers().size() + 32, 894u);
}
