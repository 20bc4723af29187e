#include "train/cpu_memory.h"

#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include <algorithm>
#include <atomic>
#include <mutex>

namespace qalign::train {

namespace {

// LibTorch's CPU allocation (c10::alloc_cpu, 64-byte aligned) behind a header holding the size, so
// that the plain deleter some callers require (raw_allocate) can give the bytes back.
class CountingAllocator final : public c10::Allocator {
 public:
  static constexpr size_t kHeader = 64;  // keeps the data as aligned as alloc_cpu's

  c10::DataPtr allocate(size_t n) override {
    auto* base = static_cast<char*>(c10::alloc_cpu(n + kHeader));
    *reinterpret_cast<int64_t*>(base) = static_cast<int64_t>(n);
    add(static_cast<int64_t>(n));
    void* data = base + kHeader;
    return {data, data, &release, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &release; }
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }

  int64_t live() const { return live_.load(); }
  int64_t peak() const { return peak_.load(); }
  void reset_peak() { peak_.store(live_.load()); }
  void raise_peak(int64_t to) {
    int64_t seen = peak_.load();
    while (to > seen && !peak_.compare_exchange_weak(seen, to)) {
    }
  }

 private:
  static void release(void* data);
  void add(int64_t delta) {
    const int64_t now = live_.fetch_add(delta) + delta;
    int64_t seen = peak_.load();
    while (now > seen && !peak_.compare_exchange_weak(seen, now)) {
    }
  }

  std::atomic<int64_t> live_{0}, peak_{0};
};

CountingAllocator* counter = nullptr;
std::once_flag installed;

void CountingAllocator::release(void* data) {
  auto* base = static_cast<char*>(data) - kHeader;
  counter->add(-*reinterpret_cast<int64_t*>(base));
  c10::free_cpu(base);
}

}  // namespace

void count_cpu_tensor_bytes() {
  std::call_once(installed, [] {
    counter = new CountingAllocator();  // lives as long as the tensors it made
    c10::SetCPUAllocator(counter, /*priority=*/100);
  });
}

bool counting_cpu_tensor_bytes() { return counter != nullptr; }
int64_t cpu_tensor_bytes() { return counter ? counter->live() : 0; }
int64_t peak_cpu_tensor_bytes() { return counter ? counter->peak() : 0; }
void reset_peak_cpu_tensor_bytes() {
  if (counter) counter->reset_peak();
}

CpuPeakScope::CpuPeakScope() : start_(cpu_tensor_bytes()), outer_peak_(peak_cpu_tensor_bytes()) {
  reset_peak_cpu_tensor_bytes();
}

CpuPeakScope::~CpuPeakScope() {
  if (counter) counter->raise_peak(outer_peak_);
}

int64_t CpuPeakScope::peak() const { return peak_cpu_tensor_bytes(); }

}  // namespace qalign::train
