#include "qalign/scorer.h"

namespace qalign {

Scorer::Scorer(model::Owl2ForCausalLM model, Tokenizer tokenizer, PromptStyle style)
    : model_(std::move(model)), tokenizer_(std::move(tokenizer)), style_(style),
      level_ids_(tokenizer_.level_token_ids()) {
  model_->eval();
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
  const auto inputs = model_->model->splice(ids, visual);
  return score_from_logits(model_->last_logits(inputs).to(torch::kCPU), level_ids_);
}

}  // namespace qalign
