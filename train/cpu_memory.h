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

}  // namespace qalign::train
