#pragma once
// qalign eval: score the test files of one or more datasets (SPEC.md §8.1, §11.2) and report how
// well the scores agree with the ground truth. Per-item predictions are appended as they are
// made, so an interrupted run picks up where it stopped.
#include <string>
#include <vector>

#include "qalign/model/quantize.h"
#include "qalign/scoring/decoded_input.h"

namespace qalign::scoring {

// The options of `qalign eval`, as its command line spells them.
struct EvalJob {
  std::string model, lora, tokenizer, image_folder, out = "eval_results";
  std::string task = "quality", prompt = "eval", readout = "levels", dtype = "float32", device = "cpu";
  std::vector<std::string> data;
  int batch_size = 8;
  bool lower_is_better = false, overwrite = false;
  model::QuantizeOptions quantize;
};

// Scores every dataset of `job.data` into `job.out` (results.json, results.md, predictions.jsonl
// and .csv, job.json; qalign/scoring/eval_folder.h says whose the folder is) and prints the
// metrics table, each item read by `load` (data::load_pixels in the command). Returns 0, or 1
// when items could not be scored; errors throw qalign::Error.
int evaluate(const EvalJob& job, const PixelLoader& load);

}  // namespace qalign::scoring
