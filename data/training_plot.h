#pragma once
// A training run's progress drawn from its metrics.jsonl: the training loss and one held-out
// evaluation metric over the steps, as a PNG. `qalign demo plot` is its command.
#include <string>
#include <utility>
#include <vector>

namespace qalign::data {

struct MetricSeries {
  std::vector<double> x, y;  // step, value
};

// The training loss and one evaluation metric of a run's metrics.jsonl: loss lines carry "loss",
// evaluation lines "eval_<dataset>_<metric>" (the first dataset found unless one is named).
// Throws on a line that is not an object with a numeric "step", and when no step is logged.
std::pair<MetricSeries, MetricSeries> read_metrics(const std::string& path, std::string dataset,
                                                   const std::string& metric);

// Draws the loss (left axis) and `metric` of `dataset` (right axis; "" for the first in the file)
// from `metrics` into the PNG `out`, and logs what it drew.
void plot_training(const std::string& metrics, const std::string& out, const std::string& dataset,
                   const std::string& metric);

}  // namespace qalign::data
