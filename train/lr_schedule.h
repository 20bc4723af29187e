#pragma once
// Learning-rate schedules as Hugging Face's get_scheduler builds them: a factor of the base
// learning rate for each optimizer step 0, 1, ... (the first update uses factor(0)).
#include <cstdint>
#include <string>

namespace qalign::train {

struct LrSchedule {
  std::string type = "cosine";  // cosine | linear | constant
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;

  // HF TrainingArguments.get_warmup_steps: ceil(ratio · total).
  static LrSchedule make(const std::string& type, double warmup_ratio, int64_t total_steps);

  // cosine: linear warm-up from 0, then half a cosine to 0 at total_steps.
  // linear: linear warm-up from 0, then linearly to 0 at total_steps.
  // constant: 1 throughout; like HF's "constant" it has no warm-up (that is
  // "constant_with_warmup", which the authors never use).
  double factor(int64_t step) const;
};

}  // namespace qalign::train
