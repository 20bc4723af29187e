// bench data: decode + preprocess throughput per thread for JPEG photographs of two typical
// sizes into the model's 448×448 tensors, next to a plain OpenCV decode + resize loop measured
// in the same run. Each worker is one thread (OpenCV's and LibTorch's own pools set to one), as
// the loader's workers are.
#include <unistd.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <chrono>
#include <exception>
#include <filesystem>
#include <new>
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

// The pictures' folder, removed however the bench ends.
struct TempDir {
  fs::path path;
  explicit TempDir(fs::path p) : path(std::move(p)) { fs::create_directories(path); }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// OpenCV's and LibTorch's pools at one thread while timing, as the loader's workers run, and
// back as they were after.
struct OneThreadEach {
  const int cv_threads = cv::getNumThreads(), torch_threads = torch::get_num_threads();
  OneThreadEach() {
    cv::setNumThreads(1);
    torch::set_num_threads(1);
  }
  ~OneThreadEach() {
    cv::setNumThreads(cv_threads);
    torch::set_num_threads(torch_threads);
  }
};

// Worker counts beyond the machine's hardware threads time the scheduler, not decoding, and
// each worker holds a decoded 4000×3000 picture: bounded by both.
int max_threads() {
  const auto cores = static_cast<int64_t>(std::thread::hardware_concurrency());
  return static_cast<int>(cores > 0 ? std::min(cores, config::kMaxWorkerThreads) : config::kMaxWorkerThreads);
}

constexpr int kMaxImagesPerThread = 100000;

void check_args(const std::vector<int>& threads, int images_per_thread) {
  const int most = max_threads();
  for (int t : threads)
    if (t < 1 || t > most)
      fail("--threads", std::to_string(t),
           "expected 1 to " + std::to_string(most) + " workers (this machine's hardware threads, at most " +
               std::to_string(config::kMaxWorkerThreads) + ")");
  if (threads.empty()) fail("--threads", "", "expected at least one worker count");
  if (images_per_thread < 1 || images_per_thread > kMaxImagesPerThread)
    fail("--images-per-thread", std::to_string(images_per_thread),
         "expected 1 to " + std::to_string(kMaxImagesPerThread));
}

// Items per second over `threads` workers each running `fn` `count` times. A worker's exception
// (or a thread that cannot start) ends the bench once every started worker has been joined.
double throughput(int threads, int count, const std::function<void()>& fn) {
  const auto t0 = std::chrono::steady_clock::now();
  // One slot per worker and one for starting them, sized before any worker writes to it.
  std::vector<std::exception_ptr> errors(static_cast<size_t>(threads) + 1);
  std::vector<std::thread> pool;
  try {
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        try {
          for (int i = 0; i < count; ++i) fn();
        } catch (...) {
          errors[t] = std::current_exception();
        }
      });
  } catch (...) {
    errors.back() = std::current_exception();
  }
  for (auto& t : pool) t.join();
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
  return threads * count / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Runs `fn` naming the worker count in any failure (memory, threads) instead of ending in
// std::terminate.
double timed(int threads, int count, const std::string& image, const std::function<void()>& fn) {
  const auto what = std::to_string(threads) + " workers decoding " + image + " pictures";
  try {
    return throughput(threads, count, fn);
  } catch (const std::bad_alloc&) {
    fail("--threads", std::to_string(threads), "out of memory with " + what);
  } catch (const std::system_error& e) {
    fail("--threads", std::to_string(threads), "cannot start " + what + ": " + e.what());
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail("--threads", std::to_string(threads), what + ": " + e.what());
  }
}

}  // namespace

nlohmann::ordered_json data(const std::vector<int>& threads, int images_per_thread) {
  check_args(threads, images_per_thread);
  const TempDir dir(fs::temp_directory_path() / ("qalign-bench-data-" + std::to_string(::getpid())));
  const OneThreadEach one_thread;
  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  for (const auto& [w, h] : std::vector<std::pair<int, int>>{{1024, 768}, {4000, 3000}}) {
    const auto path = make_jpeg(dir.path, w, h);
    const auto image = std::to_string(w) + "x" + std::to_string(h);
    const int count = w > 2000 ? std::max(1, images_per_thread / 8) : images_per_thread;
    for (int t : threads) {
      const double ours = timed(t, count, image, [&] { data::load_image_tensor(path, 448); });
      const double plain = timed(t, count, image, [&] {
        const cv::Mat img = cv::imread(path, cv::IMREAD_COLOR);
        cv::Mat out, f;
        cv::resize(img, out, {448, 448}, 0, 0, cv::INTER_CUBIC);
        out.convertTo(f, CV_32F, 1.0 / 255);
      });
      rows.push_back({{"image", image},
                      {"threads", t},
                      {"images_per_s", ours},
                      {"images_per_s_per_thread", ours / t},
                      {"opencv_images_per_s", plain},
                      {"ratio_to_opencv", ours / plain}});
    }
  }
  return {{"bench", "data"}, {"image_size", 448}, {"jpeg_quality", 90}, {"rows", rows}};
}

}  // namespace qalign::tools::bench
