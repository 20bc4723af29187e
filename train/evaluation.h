#pragma once
// The trainer's periodic evaluation: the test files scored with the model as it is now
// (qalign/scoring/records.h does the scoring, as for `qalign eval`).
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "qalign/distributed/process_group.h"
#include "qalign/label_files.h"
#include "qalign/media_budget.h"
#include "qalign/metrics.h"
#include "qalign/prompts.h"
#include "qalign/scorer.h"

namespace qalign::train {

// Evaluation during training: the test files and the tokenizer are read once; each run scores
// the files with the model as it is now (in eval mode, put back in train mode after) and returns
// the agreement per dataset. With a process group, rank r of W scores items r, r+W, ... and the
// scores are summed across ranks into every rank, so each gets the one-process metrics. A file of
// fewer than two items fails here; one with fewer than two scorable items at a run is logged and
// its metrics are NaN, so training goes on.
class Evaluator {
 public:
  // Pictures are read within `budget` (max_image_file_mb, max_image_decoded_mb).
  Evaluator(const std::vector<std::string>& files, const std::string& image_folder, Task task, int batch_size,
            Scorer scorer, const MediaBudget& budget = {});
  // `scored`, when set, is called on every rank once it has scored its share of a file, before the
  // ranks sum their scores (ZeRO-3's ranks there walk the gathers of those still scoring).
  std::map<std::string, metrics::Agreement> run(distributed::ProcessGroup* group = nullptr,
                                                const std::function<void()>& scored = {});
  const std::vector<std::string>& datasets() const { return names_; }

 private:
  std::vector<std::string> names_, files_;
  std::vector<std::vector<ScoredRecord>> records_;
  Task task_;
  int batch_size_;
  Scorer scorer_;
  MediaBudget budget_;
};

}  // namespace qalign::train
