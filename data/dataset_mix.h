#pragma once
// Several training files mixed into one sample order, each weighted, reproducible for a seed.
#include <cstdint>
#include <string>
#include <vector>

#include "qalign/label_files.h"

namespace qalign::data {

struct DatasetSource {
  std::string path;
  double weight = 1.0;  // how many times each record is drawn on average (0.5: a random half)
};

// "FILE" (weight 1) or "FILE:WEIGHT"; a suffix after the last ':' that is not a number stays part
// of the path. A negative or non-finite weight throws naming `spec`.
DatasetSource parse_dataset_source(const std::string& spec);

// Where a mixed sample comes from.
struct MixEntry {
  size_t dataset;  // index into the sources
  size_t record;   // index into that dataset's records
};

// Dataset j contributes round(weight_j · size_j) draws: every record floor(weight_j) times, plus
// a seeded choice without replacement for the fraction; the whole list is then shuffled. Same
// sizes, weights and seed give the same order.
std::vector<MixEntry> mix_datasets(const std::vector<size_t>& sizes, const std::vector<double>& weights, uint64_t seed);

// Reads every source (paths resolved against `image_folder`) and returns the mixed records.
std::vector<TrainingRecord> read_training_mix(const std::vector<DatasetSource>& sources,
                                              const std::string& image_folder, uint64_t seed);

}  // namespace qalign::data
