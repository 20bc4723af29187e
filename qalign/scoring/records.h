#pragma once
// Scoring the records of test files (SPEC.md §11.2) with a Scorer, as `qalign eval` and the
// trainer's periodic evaluation both do: items batched by media type, the next batch decoded on
// a worker thread while the model runs, unreadable items logged and skipped.
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "qalign/label_files.h"
#include "qalign/prompts.h"
#include "qalign/scorer.h"
#include "qalign/scoring/decoded_input.h"

namespace qalign::scoring {

struct ItemScore {
  size_t index = 0;  // position in the records
  double score = 0, score01 = 0;
};

// Scores every record whose `done` flag is false (all when `done` is empty), each read by `load`,
// calling `on_batch` after each batch with its scores in record order. An unreadable item, or one whose score is not
// finite, is logged and left out; returns how many were.
size_t score_records(Scorer& scorer, const std::vector<ScoredRecord>& records, const std::vector<bool>& done,
                     int batch_size, Task task, const PixelLoader& load,
                     const std::function<void(const std::vector<ItemScore>&)>& on_batch);

// The dataset name of a test file: its file name without the extension (odd bytes of a name that
// is not UTF-8 as \xHH).
std::string dataset_name(const std::string& file);

// Fails naming `file` unless at least two of its `items` were `scored`: correlations of fewer
// are undefined, and a NaN in a report reads as a number.
void check_enough_items(const std::string& file, size_t scored, size_t items);

}  // namespace qalign::scoring
