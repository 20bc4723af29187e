#include "train/evaluation.h"

#include "data/timed_decode.h"
#include "qalign/base/error.h"
#include "qalign/base/log.h"
#include "qalign/scoring/records.h"

namespace qalign::train {

Evaluator::Evaluator(const std::vector<std::string>& files, const std::string& image_folder, Task task, int batch_size,
                     Scorer scorer, const MediaBudget& budget)
    : task_(task), batch_size_(batch_size), scorer_(std::move(scorer)), budget_(budget) {
  for (const auto& file : files) {
    const auto name = scoring::dataset_name(file);
    for (const auto& n : names_)
      if (n == name) fail(file, "eval_data_paths", "two files are both named \"" + name + "\"");
    names_.push_back(name);
    files_.push_back(file);
    records_.push_back(read_scored_records(file, image_folder));
    scoring::check_enough_items(file, records_.back().size(), records_.back().size());
  }
}

std::map<std::string, metrics::Agreement> Evaluator::run(distributed::ProcessGroup* group,
                                                         const std::function<void()>& scored) {
  auto model = scorer_.model();
  model->eval();
  const int ranks = group ? group->size() : 1, rank = group ? group->rank() : 0;
  std::map<std::string, metrics::Agreement> out;
  for (size_t d = 0; d < names_.size(); ++d) {
    const auto& records = records_[d];
    const auto n = static_cast<int64_t>(records.size());
    std::vector<bool> others(records.size());
    for (size_t i = 0; i < records.size(); ++i) others[i] = static_cast<int>(i % static_cast<size_t>(ranks)) != rank;
    // Row 0: each item's score; row 1: 1 where it was scored (unreadable items stay 0).
    auto table = torch::zeros({2, n}, torch::kFloat64);
    auto at = table.accessor<double, 2>();
    scoring::score_records(scorer_, records, others, batch_size_, task_, data::budgeted_pixel_loader(budget_),
                           [&](const std::vector<scoring::ItemScore>& batch) {
                             for (const auto& s : batch) {
                               at[0][static_cast<int64_t>(s.index)] = s.score;
                               at[1][static_cast<int64_t>(s.index)] = 1;
                             }
                           });
    if (scored) scored();
    if (group) group->allreduce_sum(table);
    at = table.accessor<double, 2>();
    std::vector<double> pred, gt;
    for (int64_t i = 0; i < n; ++i)
      if (at[1][i] > 0) {
        pred.push_back(at[0][i]);
        gt.push_back(records[static_cast<size_t>(i)].mos);
      }
    // Training goes on without this evaluation: its metrics are NaN (null in the log), never best.
    try {
      scoring::check_enough_items(files_[d], pred.size(), records.size());
      out[names_[d]] = metrics::agreement(pred, gt);
    } catch (const Error& e) {
      log::error(e.what());
      out[names_[d]] = metrics::undefined_agreement(pred.size(), e.what());
    }
  }
  model->train();
  return out;
}

}  // namespace qalign::train
