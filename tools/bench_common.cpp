#include <algorithm>
#include <chrono>
#include <fstream>
#include <thread>

#include "qalign/base/error.h"
#include "qalign/config/limits.h"
#include "tools/bench.h"

namespace qalign::tools::bench {

void check_runs(const Common& c) {
  config::check_bench_runs(c.warmup, 0, "--warmup", "");
  config::check_bench_runs(c.repeats, 1, "--repeats", "");
}

torch::Device parse_device(const std::string& name) {
  if (name == "cpu") return torch::kCPU;
  if (name == "cuda") {
    if (!torch::cuda::is_available()) fail("--device", "", "cuda asked for, but no CUDA device is visible");
    return torch::kCUDA;
  }
  fail("--device", "", "expected cpu or cuda, got \"" + name + "\"");
}

torch::ScalarType parse_dtype(const std::string& name) {
  if (name == "float32") return torch::kFloat32;
  if (name == "bfloat16") return torch::kBFloat16;
  fail("--dtype", "", "expected float32 or bfloat16, got \"" + name + "\"");
}

std::string default_tokenizer(const std::string& preset) {
  return preset == "tiny" ? "tests/fixtures/qalign-tiny/model" : "tests/fixtures/llama2-tokenizer";
}

double median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + static_cast<long>(v.size() / 2), v.end());
  return v[v.size() / 2];
}

double median_seconds(const std::function<void()>& fn, int warmup, int repeats, const torch::Device& device) {
  auto sync = [&] {
    if (device.is_cuda()) torch::cuda::synchronize();
  };
  for (int i = 0; i < warmup; ++i) fn();
  sync();
  std::vector<double> times;
  for (int i = 0; i < std::max(1, repeats); ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    sync();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return median(std::move(times));
}

double matmul_peak(const torch::Device& device, torch::ScalarType dtype, int warmup, int repeats) {
  torch::NoGradGuard no_grad;
  const int64_t n = device.is_cuda() ? 8192 : 2048;
  const auto opts = torch::TensorOptions().device(device).dtype(dtype);
  const auto a = torch::randn({n, n}, opts), b = torch::randn({n, n}, opts);
  auto out = torch::empty({n, n}, opts);
  const double s = median_seconds([&] { torch::mm_out(out, a, b); }, warmup, repeats, device);
  return 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n) / s;
}

std::string device_name(const torch::Device& device) {
  if (device.is_cuda()) return "cuda";
  // The CPU model as /proc/cpuinfo names it, and the threads LibTorch uses.
  std::ifstream in("/proc/cpuinfo");
  std::string line, model = "cpu";
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  return model + " (" + std::to_string(torch::get_num_threads()) + " threads)";
}

}  // namespace qalign::tools::bench
