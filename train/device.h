#pragma once
// Where a rank trains, and what that device tells about itself: memory, generator state.
#include <torch/torch.h>

#include <string>

#include "qalign/distributed/process_group.h"

namespace qalign::train {

// `setting` is the config's device key: cpu; cuda (distributed::local_cuda_index's GPU: the only
// one a process sees, else cuda:LOCAL_RANK; an error naming the key when no GPU is present);
// auto (cuda when present, else cpu). A CUDA device also becomes the process's current device.
torch::Device training_device(const std::string& setting, const distributed::LaunchEnv& env);

// Peak bytes since the start or the last reset_peak_memory: allocated and reserved by the CUDA
// caching allocator on a GPU; on the CPU, the peak bytes of tensors (train/cpu_memory.h, when
// counting) and the process's peak resident set.
struct DeviceMemory {
  double peak_allocated = 0, peak_reserved = 0;
};
DeviceMemory device_memory(torch::Device device);
void reset_peak_memory(torch::Device device);
// Hands the CUDA caching allocator's unused blocks back to the GPU (nothing on the CPU), so that
// peaks measured after it count what is held, not what was freed before.
void release_cached_memory(torch::Device device);
// What a run's metrics call its peak memory, MiB: on a GPU the caching allocator's peak reserved
// bytes since the last reset_peak_memory (the training's, loading aside), on the CPU the
// process's peak resident set.
double peak_memory_mib(torch::Device device);
// Threads for host-side optimizer work: `setting` when above 0, else this machine's cores shared
// by the node's `local_ranks` processes (at least one).
int host_optimizer_threads(int64_t setting, int local_ranks);
// A GPU's total memory in bytes, and what is free of it now (other processes and this one's
// CUDA context hold the rest); 0 for the CPU.
int64_t device_total_memory(torch::Device device);
int64_t device_free_memory(torch::Device device);

// This process's resident set now and at its peak (VmRSS, VmHWM), in bytes; reset_peak_resident
// restarts the peak from now (false where the kernel refuses), so a load can be measured alone.
int64_t resident_bytes();
int64_t peak_resident_bytes();
bool reset_peak_resident();

// The default generator's state on `device` (CPU or one GPU), and its restoration.
torch::Tensor generator_state(torch::Device device);
void set_generator_state(torch::Device device, const torch::Tensor& state);

}  // namespace qalign::train
