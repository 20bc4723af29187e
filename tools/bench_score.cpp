// bench score: images/s and latency per batch of the scoring path (prompt, vision tower, one
// language-model forward, level softmax) with random weights of a preset and random pixels.
#include "qalign/config/limits.h"
#include "qalign/model/flops.h"
#include "qalign/model/presets.h"
#include "qalign/prompts.h"
#include "qalign/scorer.h"
#include "tools/bench.h"
#include "tools/tokenizer_fit.h"
#include "train/device.h"

namespace qalign::tools::bench {

namespace {

// As bench train-step reports it: on a GPU the caching allocator's peaks since the model was
// built, on the CPU the process's peak resident set.
nlohmann::ordered_json memory_json(torch::Device device) {
  const auto m = train::device_memory(device);
  return nlohmann::ordered_json::array(
      {{{"device", device.str()}, {"peak_allocated", m.peak_allocated}, {"peak_reserved", m.peak_reserved}}});
}

}  // namespace

nlohmann::ordered_json score(const Common& c, const std::vector<int>& batch_sizes,
                             const model::QuantizeOptions& quantize) {
  check_runs(c);
  for (const int b : batch_sizes) config::check_batch_size(b, "--batch-sizes", "");
  model::check_quantize_options(quantize, c.device);
  const auto device = parse_device(c.device);
  const auto dtype = parse_dtype(c.dtype);
  const auto config = model::preset_config(c.preset);
  const std::string tokenizer_dir = c.tokenizer.empty() ? default_tokenizer(c.preset) : c.tokenizer;
  Tokenizer tokenizer(tokenizer_dir);
  check_tokenizer_fits(tokenizer, tokenizer_dir, config, "--preset " + c.preset);
  const auto prompt_tokens =
      static_cast<int64_t>(
          tokenizer.tokenizer_image_token(inference_prompt(PromptStyle::kScorer, Task::kQuality, Media::kImage))
              .size()) -
      1;

  torch::manual_seed(0);
  model::Owl2ForCausalLM m(config, torch::TensorOptions().device(device));
  m->to(dtype);
  model::quantize_linears(m, quantize);
  Scorer scorer(m, std::move(tokenizer));
  // The peaks below count the model as scored (quantised weights, not the floats they replaced).
  train::release_cached_memory(device);
  train::reset_peak_memory(device);
  const double per_image = model::forward_flops(config, 1, prompt_tokens, 1).total();
  const double peak = matmul_peak(device, dtype, c.warmup, c.repeats);
  const int64_t S = config.vision.image_size;

  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  for (int b : batch_sizes) {
    std::vector<torch::Tensor> pixels;
    for (int i = 0; i < b; ++i)
      pixels.push_back(torch::randn({1, 3, S, S}, torch::TensorOptions().device(device).dtype(dtype)));
    const double s =
        median_seconds([&] { scorer.score(pixels, Task::kQuality, Media::kImage); }, c.warmup, c.repeats, device);
    rows.push_back({{"batch_size", b},
                    {"batch_ms", s * 1e3},
                    {"images_per_s", b / s},
                    {"ms_per_image", s * 1e3 / b},
                    {"achieved_flops", per_image * b / s},
                    {"mfu", per_image * b / s / peak}});
  }
  return {{"bench", "score"},
          {"preset", c.preset},
          {"device", device_name(device)},
          {"dtype", c.dtype},
          {"quantize", quantize.mode},
          {"group_size", quantize.group_size},
          {"quantize_vision", quantize.vision},
          {"flops_per_image", per_image},
          {"peak_flops", peak},
          {"batches", rows},
          {"memory", memory_json(device)}};
}

}  // namespace qalign::tools::bench
