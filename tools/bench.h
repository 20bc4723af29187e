#pragma once
// `qalign bench`: measured figures, each as a table and as one JSON object. Timings are medians
// of repeated runs after warm-up; every figure that compares against a limit measures that limit
// in the same run (a large matrix product for FLOP/s, a plain OpenCV loop for decoding).
#include <torch/torch.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "qalign/model/quantize.h"

namespace qalign::tools::bench {

struct Common {
  std::string preset = "small", device = "cpu", dtype = "float32", tokenizer;
  std::string optim = "adamw_torch";  // train-step: the trainer's optim setting
  std::string trace;                  // train-step: a Chrome trace of the run, when set
  int warmup = 2, repeats = 5;
};

// --warmup and --repeats within config::kMaxBenchRuns (at least one timed run).
void check_runs(const Common& c);
torch::Device parse_device(const std::string& name);
torch::ScalarType parse_dtype(const std::string& name);
// The tokenizer a preset's vocabulary fits when --tokenizer is not given (paths from the
// repository root: tests/fixtures/...).
std::string default_tokenizer(const std::string& preset);

// The middle value (the upper of the two middle ones of an even count); `v` must not be empty.
double median(std::vector<double> v);

// Median seconds of `repeats` calls of `fn` after `warmup` calls, synchronising CUDA around each.
double median_seconds(const std::function<void()>& fn, int warmup, int repeats, const torch::Device& device);

// FLOP/s of an n×n by n×n product in `dtype` on `device`, n chosen for the device (CPU 2048,
// CUDA 8192): the peak a model's matrix products can reach there.
double matmul_peak(const torch::Device& device, torch::ScalarType dtype, int warmup, int repeats);

std::string device_name(const torch::Device& device);

struct TrainStepOptions {
  int batch_size = 8;  // micro-batch per rank
  bool gradient_checkpointing = false, lora = false, offload = false;
  int zero_stage = 0;
};
// One optimizer step of `qalign train`'s Trainer: the median of c.repeats steps after c.warmup.
nlohmann::ordered_json train_step(const Common& c, const TrainStepOptions& o);
// With `quantize`, the language model's linears are quantised as `qalign score --quantize` does.
nlohmann::ordered_json score(const Common& c, const std::vector<int>& batch_sizes,
                             const model::QuantizeOptions& quantize = {});
nlohmann::ordered_json data(const std::vector<int>& threads, int images_per_thread);

}  // namespace qalign::tools::bench
