#include "data/loader.h"

#include <algorithm>
#include <cmath>

#include "data/preprocess.h"
#include "data/video.h"
#include "qalign/base/error.h"
#include "qalign/base/log.h"

namespace qalign::data {

TrainLoader::TrainLoader(std::vector<TrainingRecord> records, std::shared_ptr<const Tokenizer> tokenizer,
                         LoaderOptions options)
    : records_(std::move(records)), tokenizer_(std::move(tokenizer)), options_(std::move(options)) {
  if (options_.batch_size < 1) throw Error("TrainLoader: batch_size must be at least 1");
  for (const auto& r : records_) {
    std::vector<std::string> values;
    for (const auto& t : r.conversations) values.push_back(t.value);
    lengths_.push_back(modality_length(values, r.has_image()));
  }
  // PyTorch's DataLoader keeps prefetch_factor = 2 batches per worker in flight.
  window_ = std::max<int64_t>(1, options_.num_workers) * 2 * options_.batch_size;
}

TrainLoader::~TrainLoader() { stop_workers(); }

int64_t TrainLoader::batches_per_epoch() const {
  const int64_t global = (size() + options_.batch_size - 1) / options_.batch_size;
  return (global + options_.sampler.ranks - 1) / options_.sampler.ranks;
}

std::string TrainLoader::id_of(int64_t index) const {
  const auto& id = records_[index].id;
  return id.empty() ? "#" + std::to_string(index) : id;
}

TrainLoader::Loaded TrainLoader::load(int64_t index) const {
  const auto& r = records_[index];
  Loaded out;
  try {
    out.text = build_supervised_sample(*tokenizer_, r.conversations, r.has_image(), options_.model_max_length);
    if (r.is_video()) {
      out.pixels = load_video_tensor(r.paths[0], options_.image_size, options_.media);
    } else if (r.has_image()) {
      std::vector<torch::Tensor> images;
      for (const auto& p : r.paths) images.push_back(load_image_tensor(p, options_.image_size, options_.media));
      out.pixels = torch::stack(images);
    }
    // Page-locked on the worker, so the trainer's copy to the GPU need not wait for it.
    if (options_.pin_memory && out.pixels.defined()) out.pixels = out.pixels.pin_memory();
    out.ok = true;
  } catch (const std::exception& e) {
    out.error = e.what();
  }
  return out;
}

void TrainLoader::worker() {
  for (;;) {
    int64_t position = 0;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [&] {
        return stopping_ || (claimed_ < static_cast<int64_t>(order_.size()) && claimed_ < consumed_ + window_);
      });
      if (stopping_) return;
      position = claimed_++;
    }
    Loaded sample = load(order_[position]);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ready_[position] = std::move(sample);
    }
    changed_.notify_all();
  }
}

void TrainLoader::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
}

void TrainLoader::start_epoch(int64_t epoch, int64_t position) {
  stop_workers();
  order_ = rank_share(epoch_order(lengths_, options_.sampler, epoch), options_.batch_size, options_.sampler.rank,
                      options_.sampler.ranks);
  if (position < 0 || position > static_cast<int64_t>(order_.size()))
    throw Error("TrainLoader: position " + std::to_string(position) + " is outside the epoch's " +
                std::to_string(order_.size()) + " samples");
  epoch_ = epoch;
  skipped_ = 0;
  claimed_ = consumed_ = position;
  ready_.clear();
  stopping_ = false;
  for (int64_t i = 0; i < options_.num_workers; ++i) workers_.emplace_back([this] { worker(); });
}

std::optional<TrainBatch> TrainLoader::next() {
  TrainBatch batch;
  std::vector<SupervisedSample> texts;
  while (static_cast<int64_t>(texts.size()) < options_.batch_size && consumed_ < static_cast<int64_t>(order_.size())) {
    const int64_t position = consumed_;
    Loaded sample;
    if (workers_.empty()) {
      sample = load(order_[position]);
      consumed_ = position + 1;
    } else {
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [&] { return ready_.count(position) > 0; });
      sample = std::move(ready_[position]);
      ready_.erase(position);
      consumed_ = position + 1;
      lock.unlock();
      changed_.notify_all();
    }
    const int64_t index = order_[position];
    if (!sample.ok) {
      ++skipped_;
      ++skipped_total_;
      log::warn("skipping sample ", id_of(index), " (record ", index, "): ", sample.error);
      const double limit = options_.max_skipped_fraction * static_cast<double>(size());
      if (static_cast<double>(skipped_) > limit)
        fail("training data", "max_skipped_sample_fraction",
             log::cat("stopping: ", skipped_, " of the ", size(), " samples of epoch ", epoch_,
                      " could not be read (more than ", options_.max_skipped_fraction,
                      " of them); the last: ", id_of(index), ": ", sample.error));
      continue;
    }
    batch.ids.push_back(id_of(index));
    texts.push_back(std::move(sample.text));
    batch.pixels.push_back(sample.pixels);
    batch.level_probs.push_back(records_[static_cast<size_t>(index)].level_probs);
    batch.mos.push_back(records_[static_cast<size_t>(index)].mos.value_or(std::nan("")));
  }
  if (texts.empty()) return std::nullopt;
  batch.text = collate_supervised(texts, tokenizer_->pad_id(), options_.model_max_length);
  batch.end_position = consumed_;
  return batch;
}

}  // namespace qalign::data
