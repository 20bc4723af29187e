#include "train/trainer_state.h"

#include "qalign/base/error.h"

namespace qalign::train {

nlohmann::json TrainerState::to_json() const {
  return {{"global_step", global_step},
          {"epoch", epoch},
          {"position", position},
          {"samples_seen", samples_seen},
          {"nonfinite_in_row", nonfinite_in_row},
          {"nonfinite_total", nonfinite_total},
          {"lr_schedule",
           {{"type", schedule.type}, {"warmup_steps", schedule.warmup_steps}, {"total_steps", schedule.total_steps}}}};
}

TrainerState TrainerState::from_json(const nlohmann::json& j, const std::string& source) {
  const auto get = [&](const nlohmann::json& obj, const std::string& key, auto& out) {
    if (!obj.is_object() || !obj.contains(key)) fail(source, key, "missing");
    try {
      obj.at(key).get_to(out);
    } catch (const nlohmann::json::exception& e) {
      fail(source, key, std::string("malformed: ") + e.what());
    }
  };
  TrainerState s;
  get(j, "global_step", s.global_step);
  get(j, "epoch", s.epoch);
  get(j, "position", s.position);
  get(j, "samples_seen", s.samples_seen);
  get(j, "nonfinite_in_row", s.nonfinite_in_row);
  get(j, "nonfinite_total", s.nonfinite_total);
  if (!j.contains("lr_schedule")) fail(source, "lr_schedule", "missing");
  const auto& ls = j.at("lr_schedule");
  get(ls, "type", s.schedule.type);
  get(ls, "warmup_steps", s.schedule.warmup_steps);
  get(ls, "total_steps", s.schedule.total_steps);
  return s;
}

}  // namespace qalign::train
