#include "train/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "qalign/base/error.h"

namespace qalign::train {

LrSchedule LrSchedule::make(const std::string& type, double warmup_ratio, int64_t total_steps) {
  if (type != "cosine" && type != "linear" && type != "constant")
    fail("lr_scheduler_type", "", "expected cosine, linear or constant, got '" + type + "'");
  LrSchedule s;
  s.type = type;
  s.total_steps = total_steps;
  s.warmup_steps = static_cast<int64_t>(std::ceil(static_cast<double>(total_steps) * warmup_ratio));
  return s;
}

double LrSchedule::factor(int64_t step) const {
  if (type == "constant") return 1.0;
  // Same float arithmetic as transformers/optimization.py's lambdas (Python floats are doubles).
  if (step < warmup_steps) return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup_steps));
  const double remaining = static_cast<double>(total_steps - step);
  const double span = static_cast<double>(std::max<int64_t>(1, total_steps - warmup_steps));
  if (type == "linear") return std::max(0.0, remaining / span);
  const double progress = static_cast<double>(step - warmup_steps) / span;
  constexpr double kPi = 3.141592653589793;  // math.pi
  return std::max(0.0, 0.5 * (1.0 + std::cos(kPi * 0.5 * 2.0 * progress)));
}

}  // namespace qalign::train
