#pragma once
// From the logits at the answer position to a score (SPEC.md §5.1): a softmax over the five
// level words only, weighted back to 1..5 (the released model's score()) and to 0..1 (the
// evaluation scripts').
#include <torch/torch.h>

#include <array>
#include <string>
#include <vector>

namespace qalign {

// excellent, good, fair, poor, bad: the order of level_token_ids and of the probabilities.
inline const std::array<const char*, 5> kLevelWords = {"excellent", "good", "fair", "poor", "bad"};

struct LevelScores {
  torch::Tensor probs;    // [B,5] float32
  torch::Tensor score5;   // [B] weights 5,4,3,2,1
  torch::Tensor score01;  // [B] weights 1,.75,.5,.25,0
  torch::Tensor level;    // [B] int64 index into kLevelWords of the most likely level
};

// logits [B,V] at the answer position; level_ids: the five words' token ids.
LevelScores score_from_logits(const torch::Tensor& logits, const std::vector<int64_t>& level_ids);
// The same from the five level words' logits alone [B,5], in kLevelWords order.
LevelScores score_from_level_logits(const torch::Tensor& level_logits);

// "" when item b's score5 and score01 are finite; else "score: ..." saying why not, the field and
// problem of that item's error. NaN or Inf in a model's weights makes every probability NaN, and
// such an item must fail like an unreadable one, not pass as a score (nor as "excellent").
std::string nonfinite_score(const LevelScores& s, int64_t b);

}  // namespace qalign
