#pragma once
// Scoring the records of test files (SPEC.md §11.2) with a Scorer, as `qalign eval` and the
// trainer's periodic evaluation both do: items batched by media type, the next batch decoded on
// a worker thread while the model runs, unreadable items logged and skipped.
#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "qalign/metrics.h"
#include "qalign/prompts.h"
#include "qalign/scorer.h"
#include "train/process_group.h"

namespace qalign::train {

struct ItemScore {
  size_t index = 0;  // position in the records
  double score = 0, score01 = 0;
};

// Scores every record whose `done` flag is false (all when `done` is empty), calling `on_batch`
// after each batch with its scores in record order. An unreadable item, or one whose score is not
// finite, is logged and left out; returns how many were.
size_t score_records(Scorer& scorer, const std::vector<data::ScoredRecord>& records, const std::vector<bool>& done,
                     int batch_size, Task task, const std::function<void(const std::vector<ItemScore>&)>& on_batch);

// The dataset name of a test file: its file name without the extension.
std::string dataset_name(const std::string& file);

// Fails naming `file` unless at least two of its `items` were `scored`: correlations of fewer
// are undefined, and a NaN in a report reads as a number.
void check_enough_items(const std::string& file, size_t scored, size_t items);

// Evaluation during training: the test files and the tokenizer are read once; each run scores
// the files with the model as it is now (in eval mode, put back in train mode after) and returns
// the agreement per dataset. With a process group, rank r of W scores items r, r+W, ... and the
// scores are summed across ranks into every rank, so each gets the one-process metrics. A file of
// fewer than two items fails here; one with fewer than two scorable items at a run is logged and
// its metrics are NaN, so training goes on.
class Evaluator {
 public:
  Evaluator(const std::vector<std::string>& files, const std::string& image_folder, Task task, int batch_size,
            Scorer scorer);
  std::map<std::string, metrics::Agreement> run(ProcessGroup* group = nullptr);
  const std::vector<std::string>& datasets() const { return names_; }

 private:
  std::vector<std::string> names_, files_;
  std::vector<std::vector<data::ScoredRecord>> records_;
  Task task_;
  int batch_size_;
  Scorer scorer_;
};

}  // namespace qalign::train
