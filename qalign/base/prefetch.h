#pragma once
// An ordered parallel map over a stream: worker threads pull jobs from `source` and run `work`
// on them while the consumer is busy (decoding and pre-processing ahead of the model), and
// next() hands the results back in the source's order, never more than `window` ahead of the
// consumer. An exception from `work` or `source` is rethrown by next() at its place in the order.
#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <variant>
#include <vector>

namespace qalign {

template <class Job, class Result>
class OrderedPrefetch {
 public:
  using Source = std::function<std::optional<Job>()>;
  using Work = std::function<Result(Job&)>;

  // threads = 0: next() runs source and work itself.
  OrderedPrefetch(Source source, Work work, int threads, int window)
      : source_(std::move(source)), work_(std::move(work)), window_(std::max(window, 1)) {
    for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { run_worker(); });
  }
  ~OrderedPrefetch() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    for (auto& t : workers_) t.join();
  }
  OrderedPrefetch(const OrderedPrefetch&) = delete;
  OrderedPrefetch& operator=(const OrderedPrefetch&) = delete;

  std::optional<Result> next() {
    if (workers_.empty()) {
      if (ended_) return std::nullopt;
      auto job = source_();
      if (!job) {
        ended_ = true;
        return std::nullopt;
      }
      return work_(*job);
    }
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return ready_.count(consumed_) || (ended_ && claimed_ == consumed_); });
    auto found = ready_.find(consumed_);
    if (found == ready_.end()) {
      if (source_error_) std::rethrow_exception(source_error_);
      return std::nullopt;
    }
    auto slot = std::move(found->second);
    ready_.erase(found);
    ++consumed_;
    lock.unlock();
    changed_.notify_all();
    if (auto* error = std::get_if<std::exception_ptr>(&slot)) std::rethrow_exception(*error);
    return std::move(std::get<Result>(slot));
  }

 private:
  void run_worker() {
    for (;;) {
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [&] { return stopping_ || ended_ || claimed_ < consumed_ + window_; });
      if (stopping_ || ended_) return;
      std::optional<Job> job;
      try {
        job = source_();
      } catch (...) {
        source_error_ = std::current_exception();
      }
      if (!job) {
        ended_ = true;
        lock.unlock();
        changed_.notify_all();
        return;
      }
      const int64_t seq = claimed_++;
      lock.unlock();
      std::variant<Result, std::exception_ptr> slot;
      try {
        slot = work_(*job);
      } catch (...) {
        slot = std::current_exception();
      }
      lock.lock();
      ready_.emplace(seq, std::move(slot));
      lock.unlock();
      changed_.notify_all();
    }
  }

  Source source_;
  Work work_;
  const int64_t window_;
  std::mutex mutex_;
  std::condition_variable changed_;
  int64_t claimed_ = 0, consumed_ = 0;
  bool ended_ = false, stopping_ = false;
  std::exception_ptr source_error_;
  std::map<int64_t, std::variant<Result, std::exception_ptr>> ready_;
  std::vector<std::thread> workers_;
};

}  // namespace qalign
