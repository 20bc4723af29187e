#pragma once
// Where a run stands between two optimizer steps: enough, with the weights and the optimizer's
// moments, to continue bit for bit (trainer_state.json in each checkpoint).
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

#include "train/lr_schedule.h"

namespace qalign::train {

struct TrainerState {
  int64_t global_step = 0;  // optimizer steps taken, non-finite (skipped) ones included
  int64_t epoch = 0;        // the epoch the next batch comes from
  int64_t position = 0;     // the next batch's first position in that epoch's sample order
  int64_t samples_seen = 0;
  int64_t nonfinite_in_row = 0;  // consecutive steps skipped for a non-finite loss or gradient
  int64_t nonfinite_total = 0;
  LrSchedule schedule;

  nlohmann::json to_json() const;
  // Errors name `source` and the missing or malformed key.
  static TrainerState from_json(const nlohmann::json& j, const std::string& source);
};

}  // namespace qalign::train
