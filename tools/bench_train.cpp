// bench train-step: one optimizer step of the whole model (vision tower, abstractor, language
// model all trained, as the authors' full fine-tune), on a batch of one-turn conversations built
// as the trainer builds them, with random pixels.
#include <torch/csrc/autograd/profiler_legacy.h>
#include <algorithm>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <cstdlib>
#include "qalign/conversation.h"
#include "qalign/error.h"
#include "qalign/model/flops.h"
#include "qalign/model/owl2.h"
#include "qalign/model/presets.h"
#include "qalign/prompts.h"
#include "qalign/tokenizer.h"
#include "tools/bench.h"
#include "train/adamw.h"
#include "train/master_weights.h"

namespace qalign::tools::bench {

nlohmann::ordered_json train_step(const Common& c, int batch_size) {
  const auto device = parse_device(c.device);
  const auto dtype = parse_dtype(c.dtype);
  const auto config = model::preset_config(c.preset);
  const Tokenizer tokenizer(c.tokenizer.empty() ? default_tokenizer(c.preset) : c.tokenizer);

  std::vector<SupervisedSample> samples;
  for (int b = 0; b < batch_size; ++b) {
    const auto& questions = iqa_questions();
    const std::string question = questions[static_cast<size_t>(b) % questions.size()];
    const std::string word = level_words()[static_cast<size_t>(b) % level_words().size()];
    samples.push_back(build_supervised_sample(
        tokenizer, {{"human", question + "\n" + kImageToken}, {"gpt", training_answer(Task::kQuality, Media::kImage, word)}},
        true, 2048));
  }
  const auto text = collate_supervised(samples, 0, 2048);
  const auto ids = text.input_ids.to(device), labels = text.labels.to(device), mask = text.attention_mask.to(device);

  torch::manual_seed(0);
  model::Owl2ForCausalLM m(config, torch::TensorOptions().device(device));
  m->train();
  std::vector<std::pair<std::string, torch::Tensor>> trainable;
  for (auto& p : m->named_parameters()) trainable.emplace_back(p.key(), p.value());
  train::MasterWeights masters(trainable, dtype != torch::kFloat32);
  if (dtype != torch::kFloat32) m->to(dtype);
  if (c.optim != "adamw_torch" && c.optim != "adamw_torch_fused")
    fail("--optim", "", "expected adamw_torch or adamw_torch_fused, got \"" + c.optim + "\"");
  train::AdamW optimizer({{1e-5, 0.0, masters.names(), masters.masters()}}, {0.9, 0.999, 1e-8, c.optim == "adamw_torch_fused"});
  const int64_t S = config.vision.image_size;
  const auto pixels = torch::randn({batch_size, 3, S, S}, torch::TensorOptions().device(device).dtype(dtype));

  auto step = [&] {
    const auto tokens = m->model->encode_images(pixels);  // [B,Q+1,E]
    std::vector<torch::Tensor> visual;
    for (int b = 0; b < batch_size; ++b) visual.push_back(tokens[b]);
    const auto loss = m->lm_loss(m->model->splice(ids, visual, mask, labels));
    loss.backward();
    masters.accumulate_grads();
    optimizer.step(1.0);
    masters.copy_to_model();
    masters.zero_grad();
  };
  const double seconds = median_seconds(step, c.warmup, c.repeats, device);
  if (!c.trace.empty()) {  // one more step under the profiler, as a Chrome trace
    torch::autograd::profiler::RecordProfile guard(c.trace);
    step();
  }
  if (std::getenv("QALIGN_PROFILE")) {
    torch::autograd::profiler::RecordProfile guard(std::getenv("QALIGN_PROFILE"));
    step();
  }
  const double peak = matmul_peak(device, dtype, c.warmup, c.repeats);

  double flops = 0;
  int64_t text_tokens = 0;
  for (const auto& s : samples) {
    const auto n = static_cast<int64_t>(s.input_ids.size()) - 1;  // the image placeholder becomes the visual tokens
    text_tokens += n;
    const auto supervised = std::count_if(s.labels.begin() + 1, s.labels.end(), [](int64_t l) { return l != kIgnoreIndex; });
    flops += 3 * model::forward_flops(config, 1, n, supervised).total();
  }
  const double llm_tokens = static_cast<double>(text_tokens + batch_size * config.tokens_per_image());
  nlohmann::ordered_json j = {{"bench", "train-step"},
                              {"preset", c.preset},
                              {"batch_size", batch_size},
                              {"device", device_name(device)},
                              {"dtype", c.dtype},
                              {"optim", c.optim},
                              {"step_ms", seconds * 1e3},
                              {"samples_per_s", batch_size / seconds},
                              {"tokens_per_s", llm_tokens / seconds},
                              {"flops_per_step", flops},
                              {"achieved_flops", flops / seconds},
                              {"peak_flops", peak},
                              {"mfu", flops / seconds / peak},
                              {"parameters", model::count_parameters(*m)}};
  return j;
}

}  // namespace qalign::tools::bench
