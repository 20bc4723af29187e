#pragma once
// What makes the rows of `qalign score --out FILE` this job's: the options that change a row or
// the keep list (task, prompt, dtype, threshold, keep list), the model, LoRA and tokenizer with
// the size and mtime of each of their files (as `qalign eval` records them), the inputs as given
// and the stamps of their @lists. Kept in FILE.parts/job.json while the job runs, and with the
// names' count and digest in FILE.job.json once it is done, so that a rerun reuses rows only of
// the same job and refuses another's naming what differs.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "qalign/scoring/job.h"

namespace qalign::scoring {

nlohmann::ordered_json job_record(const ScoreJob& job);
// The record less the stamps of files: what ranks other than 0 check, since on another node they
// may read their own copy of the model (same bytes, other mtimes).
nlohmann::ordered_json without_stamps(const nlohmann::ordered_json& record);

// The first field of `now` that `before` lacks or holds otherwise: the field ("model files:
// config.json" for an entry of a stamps object), and its value there and now, as text.
struct Difference {
  std::string field, there, now;
};
std::optional<Difference> first_difference(const nlohmann::ordered_json& before, const nlohmann::ordered_json& now);

// The input names in order, as their count and a 64-bit FNV-1a digest: what a finished job read.
class InputDigest {
 public:
  void add(const std::string& name);
  int64_t count() const { return count_; }
  nlohmann::ordered_json value() const;

 private:
  int64_t count_ = 0;
  uint64_t hash_ = 14695981039346656037ull;
};

}  // namespace qalign::scoring
