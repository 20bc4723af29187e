#pragma once
// The training input pipeline: worker threads decode, pre-process and tokenise samples ahead of
// the training thread, which receives whole batches in the epoch's order (data/sampler.h) no
// matter which worker finished first, so a run is the same for a seed with any worker count.
//
// A sample whose image or video is missing or unreadable is logged, skipped and counted; the
// batch is filled with the next samples of the order instead. When an epoch has skipped more
// than max_skipped_fraction of its samples, next() throws a qalign::Error saying so.
//
// Shapes: B samples per batch, F frames (images) of a sample, S the vision image size.
#include <torch/torch.h>

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "data/sampler.h"
#include "qalign/conversation.h"
#include "qalign/label_files.h"
#include "qalign/media_budget.h"
#include "qalign/tokenizer.h"

namespace qalign::data {

struct LoaderOptions {
  int64_t batch_size = 1;
  int64_t image_size = 448;
  int64_t model_max_length = 2048;
  int64_t num_workers = 4;  // 0: everything on the calling thread
  double max_skipped_fraction = 0.01;
  bool pin_memory = false;  // pixels in page-locked memory (for a CUDA trainer)
  MediaBudget media;        // what one picture may cost (max_image_file_mb, max_image_decoded_mb)
  SamplerOptions sampler;
};

// One batch of the trainer.
struct TrainBatch {
  std::vector<std::string> ids;                  // each sample's record id ("#<index>" when it has none)
  SupervisedBatch text;                          // input_ids, labels, attention_mask [B,L]
  std::vector<torch::Tensor> pixels;             // per sample [F,3,S,S] float32; undefined for text only
  std::vector<std::vector<double>> level_probs;  // per sample, the record's soft target (may be empty)
  std::vector<double> mos;                       // per sample, the record's MOS; NaN when it has none
  int64_t end_position = 0;                      // order position after this batch's last sample
};

// Where the trainer takes its batches from: the loader below, or a source of synthetic batches
// (the training benchmark).
class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual int64_t size() const = 0;  // samples
  // Batches in an epoch when nothing is skipped.
  virtual int64_t batches_per_epoch() const = 0;
  // Begins `epoch` at `position` of its order (0, or a TrainBatch::end_position to resume).
  virtual void start_epoch(int64_t epoch, int64_t position) = 0;
  // The next batch, or nullopt when the epoch is exhausted.
  virtual std::optional<TrainBatch> next() = 0;
  virtual int64_t skipped_total() const = 0;  // unreadable samples skipped so far
};

class TrainLoader : public BatchSource {
 public:
  TrainLoader(std::vector<TrainingRecord> records, std::shared_ptr<const Tokenizer> tokenizer, LoaderOptions options);
  ~TrainLoader();
  TrainLoader(const TrainLoader&) = delete;
  TrainLoader& operator=(const TrainLoader&) = delete;

  int64_t size() const override { return static_cast<int64_t>(records_.size()); }
  // ceil(size / batch_size), shared among the sampler's ranks (rank 0's count, the largest).
  int64_t batches_per_epoch() const override;
  void start_epoch(int64_t epoch, int64_t position = 0) override;
  std::optional<TrainBatch> next() override;

  int64_t epoch() const { return epoch_; }
  int64_t skipped_in_epoch() const { return skipped_; }
  int64_t skipped_total() const override { return skipped_total_; }  // since this loader was made

 private:
  struct Loaded {
    bool ok = false;
    std::string error;
    SupervisedSample text;
    torch::Tensor pixels;
  };
  Loaded load(int64_t index) const;
  void worker();
  void stop_workers();
  std::string id_of(int64_t index) const;

  std::vector<TrainingRecord> records_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  LoaderOptions options_;
  std::vector<int64_t> lengths_;  // modality lengths, for the sampler

  std::vector<int64_t> order_;
  int64_t epoch_ = 0, skipped_ = 0, skipped_total_ = 0;
  // Guarded by mutex_: workers claim order positions below consumed_ + window_ and park results
  // by position until the training thread takes them in order.
  std::mutex mutex_;
  std::condition_variable changed_;
  int64_t claimed_ = 0, consumed_ = 0, window_ = 1;
  bool stopping_ = false;
  std::map<int64_t, Loaded> ready_;
  std::vector<std::thread> workers_;
};

}  // namespace qalign::data
