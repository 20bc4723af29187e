#include "train/device.h"

#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <sys/resource.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <thread>

#include "qalign/base/error.h"
#include "train/cpu_memory.h"

namespace qalign::train {

torch::Device training_device(const std::string& setting, const distributed::LaunchEnv& env) {
  if (setting == "cpu") return torch::kCPU;
  const int64_t gpus = torch::cuda::is_available() ? static_cast<int64_t>(torch::cuda::device_count()) : 0;
  if (gpus == 0) {
    if (setting == "cuda")
      fail("training config", "device", "cuda asked for, but no GPU is available here; use cpu or auto");
    return torch::kCPU;
  }
  const auto index = static_cast<c10::DeviceIndex>(distributed::local_cuda_index(env, gpus));
  c10::cuda::set_device(index);
  return {torch::kCUDA, index};
}

namespace {

// The process's peak resident set since it started (getrusage; unaffected by reset_peak_resident).
int64_t peak_rss_bytes() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;  // KiB on Linux
}

}  // namespace

DeviceMemory device_memory(torch::Device device) {
  if (device.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
    const auto all = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
    return {static_cast<double>(stats.allocated_bytes[all].peak), static_cast<double>(stats.reserved_bytes[all].peak)};
  }
  const auto rss = static_cast<double>(peak_rss_bytes());
  return {counting_cpu_tensor_bytes() ? static_cast<double>(peak_cpu_tensor_bytes()) : rss, rss};
}

int host_optimizer_threads(int64_t setting, int local_ranks) {
  if (setting > 0) return static_cast<int>(setting);
  const auto cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, cores / std::max(1, local_ranks));
}

double peak_memory_mib(torch::Device device) {
  return (device.is_cuda() ? device_memory(device).peak_reserved : static_cast<double>(peak_rss_bytes())) / (1 << 20);
}

void release_cached_memory(torch::Device device) {
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::emptyCache();
}

void reset_peak_memory(torch::Device device) {
  if (device.is_cuda())
    c10::cuda::CUDACachingAllocator::resetPeakStats(device.index());
  else
    reset_peak_cpu_tensor_bytes();
}

namespace {

int64_t status_kib(const char* key) {
  std::ifstream in("/proc/self/status");
  const std::string prefix = std::string(key) + ":";
  for (std::string line; std::getline(in, line);)
    if (line.rfind(prefix, 0) == 0) return std::stoll(line.substr(prefix.size()));
  return 0;
}

}  // namespace

int64_t device_total_memory(torch::Device device) {
  if (!device.is_cuda()) return 0;
  return static_cast<int64_t>(c10::cuda::CUDACachingAllocator::get()->getMemoryInfo(device.index()).second);
}

int64_t device_free_memory(torch::Device device) {
  if (!device.is_cuda()) return 0;
  return static_cast<int64_t>(c10::cuda::CUDACachingAllocator::get()->getMemoryInfo(device.index()).first);
}

int64_t resident_bytes() { return status_kib("VmRSS") * 1024; }
int64_t peak_resident_bytes() { return status_kib("VmHWM") * 1024; }

bool reset_peak_resident() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";  // the kernel's command to reset the peak resident set
  out.close();
  return !out.fail();
}

torch::Tensor generator_state(torch::Device device) {
  auto gen = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_generator_state(torch::Device device, const torch::Tensor& state) {
  auto gen = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

}  // namespace qalign::train
