// bench data: decode + preprocess throughput per thread for JPEG photographs of two typical
// sizes into the model's 448×448 tensors, next to a plain OpenCV decode + resize loop measured
// in the same run. Each worker is one thread (OpenCV's and LibTorch's own pools set to one), as
// the loader's workers are.
#include <unistd.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <chrono>
#include <exception>
#include <filesystem>
#include <thread>

#include "data/preprocess.h"
#include "qalign/base/error.h"
#include "qalign/config/limits.h"
#include "tools/bench.h"

namespace qalign::tools::bench {

namespace {

namespace fs = std::filesystem;

const std::vector<std::string> kSources = {"/usr/share/doc/opencv-doc/examples/data/baboon.jpg",
                                           "/usr/lib/python3/dist-packages/skimage/data/astronaut.png"};

// A photograph Debian ships, enlarged to w×h and saved as a quality-90 JPEG in `dir`.
std::string make_jpeg(const fs::path& dir, int w, int h) {
  for (const auto& src : kSources) {
    const cv::Mat img = cv::imread(src, cv::IMREAD_COLOR);
    if (img.empty()) continue;
    cv::Mat sized;
    cv::resize(img, sized, {w, h}, 0, 0, cv::INTER_CUBIC);
    const auto path = (dir / ("photo_" + std::to_string(w) + "x" + std::to_string(h) + ".jpg")).string();
    if (!cv::imwrite(path, sized, {cv::IMWRITE_JPEG_QUALITY, 90})) fail(path, "", "cannot write");
    return path;
  }
  fail(kSources.front(), "", "no photograph to benchmark with; install opencv-doc (scripts/setup.sh does)");
}

// Items per second over `threads` workers each running `fn` `count` times. A worker's failure
// (out of memory, say) is rethrown here once all have stopped, not left to end the process.
double throughput(int threads, int count, const std::function<void()>& fn) {
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::exception_ptr> errors(static_cast<size_t>(threads));
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      try {
        for (int i = 0; i < count; ++i) fn();
      } catch (...) {
        errors[static_cast<size_t>(t)] = std::current_exception();
      }
    });
  for (auto& t : pool) t.join();
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
  return threads * count / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The folder of the run's pictures, removed however the run ends.
struct ScratchFolder {
  fs::path path;
  explicit ScratchFolder(fs::path p) : path(std::move(p)) { fs::create_directories(path); }
  ~ScratchFolder() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// Workers beyond the cores cannot decode faster, and each holds a 4000x3000 picture.
void check_threads(const std::vector<int>& threads) {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (const int t : threads)
    if (t < 1 || t > cores)
      fail("--threads", "",
           "expected 1 to " + std::to_string(cores) + " workers (this machine's cores), got " + std::to_string(t));
}

}  // namespace

nlohmann::ordered_json data(const std::vector<int>& threads, int images_per_thread) {
  check_threads(threads);
  config::check_bench_runs(images_per_thread, 1, "--images-per-thread", "");
  const ScratchFolder scratch(fs::temp_directory_path() / ("qalign-bench-data-" + std::to_string(::getpid())));
  const auto& dir = scratch.path;
  const int cv_threads = cv::getNumThreads();
  const int torch_threads = torch::get_num_threads();
  cv::setNumThreads(1);
  torch::set_num_threads(1);
  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  for (const auto& [w, h] : std::vector<std::pair<int, int>>{{1024, 768}, {4000, 3000}}) {
    const auto path = make_jpeg(dir, w, h);
    const int count = w > 2000 ? std::max(1, images_per_thread / 8) : images_per_thread;
    for (int t : threads) {
      const double ours = throughput(t, count, [&] { data::load_image_tensor(path, 448); });
      const double plain = throughput(t, count, [&] {
        const cv::Mat img = cv::imread(path, cv::IMREAD_COLOR);
        cv::Mat out, f;
        cv::resize(img, out, {448, 448}, 0, 0, cv::INTER_CUBIC);
        out.convertTo(f, CV_32F, 1.0 / 255);
      });
      rows.push_back({{"image", std::to_string(w) + "x" + std::to_string(h)},
                      {"threads", t},
                      {"images_per_s", ours},
                      {"images_per_s_per_thread", ours / t},
                      {"opencv_images_per_s", plain},
                      {"ratio_to_opencv", ours / plain}});
    }
  }
  cv::setNumThreads(cv_threads);
  torch::set_num_threads(torch_threads);
  return {{"bench", "data"}, {"image_size", 448}, {"jpeg_quality", 90}, {"rows", rows}};
}

}  // namespace qalign::tools::bench
