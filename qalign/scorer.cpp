#include "qalign/scorer.h"

#include <cmath>
#include <cstdlib>

#include "qalign/base/error.h"
#include "qalign/base/log.h"

namespace qalign {

namespace {

// A model trained on numeric answers writes at most "5.00." after the prompt: a handful of
// pieces with a tokenizer that splits digits.
constexpr int kMaxNumberTokens = 6;

// The first number in `text`, or NaN when there is none.
double first_number(const std::string& text) {
  const auto at = text.find_first_of("0123456789");
  if (at == std::string::npos) return std::nan("");
  return std::strtod(text.c_str() + at, nullptr);
}

}  // namespace

Readout parse_readout(const std::string& word, const std::string& source) {
  if (word == "levels") return Readout::kLevels;
  if (word == "number") return Readout::kNumber;
  if (word == "regression") return Readout::kRegression;
  fail(source, "readout", "expected levels, number or regression, got \"" + word + "\"");
}

Scorer::Scorer(model::Owl2ForCausalLM model, Tokenizer tokenizer, PromptStyle style, Readout readout)
    : model_(std::move(model)),
      tokenizer_(std::move(tokenizer)),
      style_(style),
      level_ids_(tokenizer_.level_token_ids()),
      readout_(readout) {
  if (readout_ == Readout::kRegression && !model_->score_head)
    fail(tokenizer_.model_path(), "score_head",
         "the regression readout needs a model trained with answer_format: regression");
  model_->eval();
}

torch::Tensor Scorer::decode_numbers(const torch::Tensor& ids, const std::vector<torch::Tensor>& visual) {
  for (const auto& v : visual)
    if (v.size(0) != visual.front().size(0))
      fail("scorer", "readout", "the number readout decodes a batch in step: its items need equal frame counts");
  const int64_t B = ids.size(0), prompt = ids.size(1);
  auto seq = ids;
  // NaN logits decode to an arbitrary token: such an item is NaN, not the middle of the scale.
  auto finite = torch::ones({B}, torch::kBool).to(ids.device());
  for (int k = 0; k < kMaxNumberTokens; ++k) {
    const auto logits = model_->last_logits(model_->model->splice(seq, visual));  // [B,V]
    finite = finite.logical_and(torch::isfinite(logits).all(-1));
    seq = torch::cat({seq, logits.argmax(-1).unsqueeze(1)}, 1);
  }
  const auto answer = seq.narrow(1, prompt, kMaxNumberTokens).to(torch::kCPU).contiguous();
  finite = finite.to(torch::kCPU);
  std::vector<float> out;
  int unreadable = 0;
  for (int64_t b = 0; b < B; ++b) {
    if (!finite[b].item<bool>()) {
      out.push_back(std::nanf(""));
      continue;
    }
    const auto* p = answer[b].data_ptr<int64_t>();
    const double v = first_number(tokenizer_.decode(std::vector<int64_t>(p, p + kMaxNumberTokens), true));
    // An answer without a number gets the middle of the scale, so the metrics stay defined.
    if (!std::isfinite(v)) ++unreadable;
    out.push_back(static_cast<float>(std::isfinite(v) ? v : 3.0));
  }
  if (unreadable) log::warn(unreadable, " of ", B, " answers held no number; scored 3");
  return torch::tensor(out);
}

LevelScores Scorer::score(const std::vector<torch::Tensor>& pixels, Task task, Media media) {
  torch::NoGradGuard no_grad;
  const auto device = model_->lm_head->weight.device();
  const auto prompt_ids = tokenizer_.tokenizer_image_token(inference_prompt(style_, task, media));
  const auto B = static_cast<int64_t>(pixels.size());
  const auto ids = torch::tensor(prompt_ids, torch::kInt64).unsqueeze(0).expand({B, -1}).contiguous().to(device);

  // Every frame of the batch through the vision tower at once, then split back per item.
  std::vector<int64_t> frames;
  for (const auto& p : pixels) frames.push_back(p.size(0));
  const auto tokens = model_->model->encode_images(torch::cat(pixels).to(device));  // [ΣF,Q+1,E]
  std::vector<torch::Tensor> visual;
  int64_t at = 0;
  for (auto f : frames) {
    visual.push_back(tokens.narrow(0, at, f).reshape({-1, tokens.size(-1)}));
    at += f;
  }
  if (readout_ == Readout::kLevels) {
    // Only the five level words' rows of lm_head: the softmax is over those logits alone.
    const auto levels = torch::tensor(level_ids_, torch::kInt64).to(device);
    const auto hidden = model_->last_hidden(model_->model->splice(ids, visual));
    return score_from_level_logits(model_->logits(hidden, levels).to(torch::kCPU));
  }
  LevelScores s;
  s.score5 =
      readout_ == Readout::kNumber
          ? decode_numbers(ids, visual)
          : model_->score(model_->last_hidden(model_->model->splice(ids, visual))).to(torch::kCPU, torch::kFloat32);
  s.score01 = (s.score5 - 1.0) / 4.0;
  return s;
}

}  // namespace qalign
