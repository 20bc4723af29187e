#pragma once
// Scores images and videos with a loaded model: prompt -> ids, pixels -> visual tokens, one
// forward per batch, level probabilities at each sample's last real position.
#include <torch/torch.h>

#include <vector>

#include "qalign/model/owl2.h"
#include "qalign/prompts.h"
#include "qalign/scoring.h"
#include "qalign/tokenizer.h"

namespace qalign {

// How a score is read from the model. kLevels is Q-Align's; the other two are the ablation's
// baselines: kNumber greedily decodes the number a model trained on numeric answers writes after
// the prompt, kRegression reads the model's score_head at the last prompt position.
enum class Readout { kLevels, kNumber, kRegression };
// "levels", "number", "regression"; anything else fails naming `source`.
Readout parse_readout(const std::string& word, const std::string& source);

class Scorer {
 public:
  Scorer(model::Owl2ForCausalLM model, Tokenizer tokenizer, PromptStyle style = PromptStyle::kScorer,
         Readout readout = Readout::kLevels);

  // pixels: one [F,3,S,S] tensor per item (F = 1 for an image, the sampled frames for a video).
  // Items of a batch may have different frame counts: each is read at its own last position.
  // With kNumber or kRegression only score5 (the number itself) and score01 ((score5 - 1) / 4)
  // are set. An item whose model output is not finite gets a NaN score: see nonfinite_score.
  LevelScores score(const std::vector<torch::Tensor>& pixels, Task task, Media media);

  const model::Owl2ForCausalLM& model() const { return model_; }
  const std::vector<int64_t>& level_ids() const { return level_ids_; }
  int64_t image_size() const { return model_->config.vision.image_size; }

 private:
  model::Owl2ForCausalLM model_;
  Tokenizer tokenizer_;
  PromptStyle style_;
  std::vector<int64_t> level_ids_;
  Readout readout_;

  torch::Tensor decode_numbers(const torch::Tensor& ids, const std::vector<torch::Tensor>& visual);
};

}  // namespace qalign
