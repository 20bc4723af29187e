#include "qalign/scoring/records.h"

#include <filesystem>
#include <future>

#include "qalign/base/error.h"
#include "qalign/base/log.h"
#include "qalign/base/utf8.h"

namespace qalign::scoring {

namespace {

struct Batch {
  Media media = Media::kImage;
  std::vector<size_t> indices;
};

struct LoadedBatch {
  std::vector<torch::Tensor> pixels;
  std::vector<size_t> indices;  // the items that decoded
};

LoadedBatch load_batch(const std::vector<ScoredRecord>& records, const Batch& b, const PixelLoader& load,
                       int64_t image_size) {
  LoadedBatch out;
  for (size_t i : b.indices) {
    const auto& r = records[i];
    try {
      out.pixels.push_back(load(r.path, b.media, image_size));
      out.indices.push_back(i);
    } catch (const Error& e) {
      log::error("skipped: ", e.what());
    }
  }
  return out;
}

}  // namespace

size_t score_records(Scorer& scorer, const std::vector<ScoredRecord>& records, const std::vector<bool>& done,
                     int batch_size, Task task, const PixelLoader& load,
                     const std::function<void(const std::vector<ItemScore>&)>& on_batch) {
  std::vector<Batch> batches;
  for (size_t i = 0; i < records.size(); ++i) {
    if (!done.empty() && done[i]) continue;
    const Media media = records[i].is_video() ? Media::kVideo : Media::kImage;
    if (batches.empty() || batches.back().media != media ||
        static_cast<int>(batches.back().indices.size()) >= batch_size)
      batches.push_back({media, {}});
    batches.back().indices.push_back(i);
  }
  const int64_t size = scorer.image_size();
  std::future<LoadedBatch> next;
  if (!batches.empty())
    next = std::async(std::launch::async, load_batch, std::cref(records), std::cref(batches[0]), std::cref(load), size);
  size_t failed = 0;
  for (size_t b = 0; b < batches.size(); ++b) {
    const LoadedBatch loaded = next.get();
    if (b + 1 < batches.size())
      next = std::async(std::launch::async, load_batch, std::cref(records), std::cref(batches[b + 1]), std::cref(load),
                        size);
    failed += batches[b].indices.size() - loaded.indices.size();
    if (loaded.indices.empty()) continue;
    const auto s = scorer.score(loaded.pixels, task, batches[b].media);
    std::vector<ItemScore> scores;
    for (size_t k = 0; k < loaded.indices.size(); ++k) {
      const auto at = static_cast<int64_t>(k);
      const std::string nonfinite = nonfinite_score(s, at);
      if (!nonfinite.empty()) {
        log::error("skipped: ", records[loaded.indices[k]].path, ": ", nonfinite);
        ++failed;
        continue;
      }
      scores.push_back({loaded.indices[k], s.score5[at].item<double>(), s.score01[at].item<double>()});
    }
    if (!scores.empty()) on_batch(scores);
  }
  return failed;
}

std::string dataset_name(const std::string& file) {
  return utf8_escaped(std::filesystem::path(file).stem().string());  // a JSON key in the reports
}

void check_enough_items(const std::string& file, size_t scored, size_t items) {
  if (scored >= 2) return;
  const std::string what = scored == items ? "holds " + std::to_string(items) + (items == 1 ? " item" : " items")
                                           : std::to_string(scored) + " of " + std::to_string(items) +
                                                 " items could be scored (each failure is logged above)";
  fail(file, "", what + "; SRCC and PLCC need at least two");
}

}  // namespace qalign::scoring
