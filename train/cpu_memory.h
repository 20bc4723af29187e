#pragma once
// The CPU's counterpart of the CUDA caching allocator's statistics: the bytes of CPU tensors alive
// and their peak, counted by an allocator installed over LibTorch's own. The resident set (the
// kernel's count) also holds the libraries, malloc's free lists and pages not yet returned, so it
// cannot say what a training step itself needs; this count can, and `qalign plan` is held to it.
#include <cstdint>

namespace qalign::train {

// Installs the counter for the rest of the process (later calls do nothing). Tensors allocated
// before it are not counted, nor is their release.
void count_cpu_tensor_bytes();
bool counting_cpu_tensor_bytes();

// Bytes of CPU tensors alive now, and at their peak since the last reset (0 without the counter).
int64_t cpu_tensor_bytes();
int64_t peak_cpu_tensor_bytes();
void reset_peak_cpu_tensor_bytes();

// The peak of one phase of a run (loading, a save, an evaluation) while the run's own peak is
// kept: the count's peak restarts from the bytes alive now, and when the scope ends it is again
// the highest of the run's and the phase's.
class CpuPeakScope {
 public:
  CpuPeakScope();
  ~CpuPeakScope();
  CpuPeakScope(const CpuPeakScope&) = delete;
  CpuPeakScope& operator=(const CpuPeakScope&) = delete;
  int64_t start() const { return start_; }  // bytes alive when the phase began
  int64_t peak() const;                     // the most alive at once since

 private:
  int64_t start_, outer_peak_;
};

}  // namespace qalign::train
