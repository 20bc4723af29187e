// Video sampling (authors' 1-frame-per-second rule), FFmpeg decoding through OpenCV and the
// per-frame pre-processing, against the qalign-tiny and qalign-448 goldens.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <unistd.h>
#include <array>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/videoio.hpp>

#include "data/preprocess.h"
#include "data/video.h"
#include "qalign/base/error.h"
#include "qalign/io/safetensors.h"
#include "tests/support/fixtures.h"
#include "tests/support/goldens.h"

namespace qalign::data {
namespace {

using qalign::test::fixture;

using test::as_tensor;
using test::golden;
using test::max_abs_diff;
using test::read_json;

// SHA-256 (FIPS 180-4), to compare decoded frames with the digests golden.json records.
std::string sha256_hex(const std::vector<uint8_t>& data) {
  static constexpr uint32_t k[64] = {
      0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
      0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
      0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
      0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
      0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
      0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
      0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
      0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
  uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  std::vector<uint8_t> msg = data;
  const uint64_t bits = static_cast<uint64_t>(data.size()) * 8;
  msg.push_back(0x80);
  while (msg.size() % 64 != 56) msg.push_back(0);
  for (int i = 7; i >= 0; --i) msg.push_back(static_cast<uint8_t>(bits >> (8 * i)));
  auto rotr = [](uint32_t x, int n) { return (x >> n) | (x << (32 - n)); };
  for (size_t block = 0; block < msg.size(); block += 64) {
    uint32_t w[64];
    for (int t = 0; t < 16; ++t)
      w[t] = uint32_t{msg[block + 4 * t]} << 24 | uint32_t{msg[block + 4 * t + 1]} << 16 |
             uint32_t{msg[block + 4 * t + 2]} << 8 | msg[block + 4 * t + 3];
    for (int t = 16; t < 64; ++t) {
      const uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
      const uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
      w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int t = 0; t < 64; ++t) {
      const uint32_t t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[t] + w[t];
      const uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      hh = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
  }
  char hex[65];
  for (int i = 0; i < 8; ++i) std::snprintf(hex + 8 * i, 9, "%08x", h[i]);
  return std::string(hex, 64);
}

TEST(Sha256, KnownDigests) {
  EXPECT_EQ(sha256_hex({}), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex({'a', 'b', 'c'}), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(OnePerSecond, AuthorsRule) {
  EXPECT_EQ(one_per_second_indices(2.0, 8), (std::vector<int64_t>{0, 2, 4, 6}));
  EXPECT_EQ(one_per_second_indices(23.976, 72), (std::vector<int64_t>{0, 23, 47}));
  EXPECT_EQ(one_per_second_indices(29.97, 299), (std::vector<int64_t>{0, 29, 59, 89, 119, 149, 179, 209, 239}));
  EXPECT_TRUE(one_per_second_indices(30.0, 29).empty());
  EXPECT_EQ(one_per_second_indices(0.5, 2), (std::vector<int64_t>{0, 0, 1, 1}));
}

// ---- qalign-tiny: 30x20 MJPG at 2 fps, 8 frames ----

TEST(TinyVideo, SampledFramesMatch) {
  const auto meta = read_json(fixture("qalign-tiny/golden.json"));
  for (const std::string entry : {"video", "video_mp4"}) {
    SCOPED_TRACE(entry);
    const auto& m = meta[entry];
    const SampledVideo v = sample_video(fixture("qalign-tiny/inputs/" + m["file"].get<std::string>()));
    EXPECT_EQ(v.fps, m["fps"].get<double>());
    EXPECT_EQ(v.frame_count, m["num_frames"].get<int64_t>());
    EXPECT_EQ(v.indices, m["sampled_indices"].get<std::vector<int64_t>>());
    const torch::Tensor want = golden("qalign-tiny").get("input." + entry + ".sampled_frames_rgb");
    ASSERT_EQ(static_cast<int64_t>(v.frames.size()), want.size(0));
    for (size_t i = 0; i < v.frames.size(); ++i)
      EXPECT_TRUE(torch::equal(as_tensor(v.frames[i]), want[i])) << "frame " << v.indices[i];
  }
}

// Half a frame per second: the reference's list repeats each index; the real frames are all
// there, so this scores, while the 600 s duration limit still bounds the copies.
TEST(TinyVideo, FrameRateBelowOneRepeatsRealFrames) {
  std::ifstream in(fixture("qalign-tiny/inputs/video.avi"), std::ios::binary);
  std::string avi((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_EQ(avi.substr(0x64, 4), "strh");
  avi.replace(0x80, 8, std::string("\x02\0\0\0\x01\0\0\0", 8));  // dwScale 2, dwRate 1
  test::ScratchDir dir;
  std::ofstream(dir.file("half.avi"), std::ios::binary) << avi;
  const SampledVideo v = sample_video(dir.file("half.avi"));
  EXPECT_EQ(v.fps, 0.5);
  EXPECT_EQ(v.frame_count, 8);
  EXPECT_EQ(v.indices, (std::vector<int64_t>{0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7}));
  ASSERT_EQ(v.frames.size(), 16u);
  for (size_t i = 0; i < 16; i += 2) EXPECT_EQ(v.frames[i].rgb, v.frames[i + 1].rgb) << i;
  // At 2 fps the fixture samples frames 0, 2, 4, 6: the same pictures as indices 0, 2, 4, 6 here.
  const SampledVideo normal = sample_video(fixture("qalign-tiny/inputs/video.avi"));
  ASSERT_EQ(normal.indices, (std::vector<int64_t>{0, 2, 4, 6}));
  for (size_t k = 0; k < 4; ++k) EXPECT_EQ(v.frames[4 * k].rgb, normal.frames[k].rgb) << k;
  EXPECT_EQ(sampled_seconds("x.avi", 0.5, 8, "by its header"), 16);
  EXPECT_EQ(sampled_seconds("x.avi", 1.0, 600.5, "by its header"), 600);
  EXPECT_THROW(sampled_seconds("x.avi", 1.0, 601, "by its header"), Error);
  EXPECT_THROW(sampled_seconds("x.avi", 1e-300, 1e300, "by its header"), Error);
}

TEST(TinyVideo, PixelValues) {
  const torch::Tensor got = load_video_tensor(fixture("qalign-tiny/inputs/video.avi"), 56);
  const torch::Tensor want = golden("qalign-tiny").get("video.pixel_values");
  ASSERT_EQ(got.sizes(), want.sizes());
  const double diff = max_abs_diff(got, want);
  std::cout << "[ measured ] video.pixel_values max abs diff " << diff << "\n";
  EXPECT_LE(diff, 1e-5);
}

// ---- qalign-448: megamind_3s.avi, 720x528 MJPG, 72 frames at 23.976 fps ----

TEST(Video448, FramesHashesAndPixelValues) {
  const auto meta = read_json(fixture("qalign-448/golden.json"))["video"];
  const SampledVideo v = sample_video(fixture("qalign-448/inputs/" + meta["file"].get<std::string>()));
  EXPECT_EQ(v.fps, meta["fps"].get<double>());
  EXPECT_EQ(v.frame_count, meta["num_frames"].get<int64_t>());
  ASSERT_EQ(v.indices, meta["sampled_indices"].get<std::vector<int64_t>>());
  const auto& g = golden("qalign-448");
  for (size_t i = 0; i < v.frames.size(); ++i) {
    const auto& fm = meta["frames"][i];
    const Image& frame = v.frames[i];
    const std::string key = "video.frame" + std::to_string(v.indices[i]) + ".";
    SCOPED_TRACE(key);
    ASSERT_EQ(fm["index"].get<int64_t>(), v.indices[i]);
    EXPECT_EQ(frame.height, meta["decoded_size_hw"][0].get<int>());
    EXPECT_EQ(frame.width, meta["decoded_size_hw"][1].get<int>());
    EXPECT_EQ(sha256_hex(frame.rgb), fm["decoded_rgb_sha256"].get<std::string>());
    const torch::Tensor yx = g.get(key + "decoded_sample_yx");
    const torch::Tensor rgb = g.get(key + "decoded_sample_rgb");
    int64_t mismatched = 0;
    for (int64_t s = 0; s < yx.size(0); ++s) {
      const uint8_t* p = frame.pixel(yx[s][1].item<int>(), yx[s][0].item<int>());
      for (int c = 0; c < 3; ++c) mismatched += p[c] != rgb[s][c].item<uint8_t>();
    }
    EXPECT_EQ(mismatched, 0);
    EXPECT_EQ(sha256_hex(resize_and_crop(expand2square(frame), 448).rgb), fm["resized_448_sha256"].get<std::string>());
    const torch::Tensor pv = preprocess_image(frame, 448);
    const torch::Tensor idx = g.get(key + "pixel_values.sample_index");
    const torch::Tensor got = pv.index({idx.select(1, 0), idx.select(1, 1), idx.select(1, 2)});
    const double diff = max_abs_diff(got, g.get(key + "pixel_values.sample_value"));
    std::cout << "[ measured ] " << key << "pixel_values samples max abs diff " << diff << "\n";
    EXPECT_LE(diff, 1e-6);
    const torch::Tensor flat = pv.to(torch::kFloat64).reshape({3, -1});
    for (int c = 0; c < 3; ++c) {
      EXPECT_NEAR(flat[c].mean().item<double>(), fm["pixel_values_stats"]["mean"][c].get<double>(), 1e-5);
      EXPECT_NEAR(flat[c].std(/*unbiased=*/false).item<double>(), fm["pixel_values_stats"]["std"][c].get<double>(),
                  1e-5);
    }
  }
}

// ---- errors ----

std::string error_of(const std::string& path) {
  try {
    load_video_frames(path);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no qalign::Error for " << path;
  return "";
}

class VideoErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = "/tmp/qalign_video_XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    for (const auto& f : made_) ::unlink(f.c_str());
    ::rmdir(dir_.c_str());
  }
  std::string file(const std::string& name) {
    made_.push_back(dir_ + "/" + name);
    return made_.back();
  }

 private:
  std::string dir_;
  std::vector<std::string> made_;
};

TEST_F(VideoErrors, MissingFile) {
  const std::string path = file("absent_clip.avi");
  EXPECT_NE(error_of(path).find("absent_clip.avi"), std::string::npos);
}

TEST_F(VideoErrors, NotAVideo) {
  const std::string path = file("text_clip.mp4");
  std::ofstream(path) << "plain text, no video stream here";
  EXPECT_NE(error_of(path).find("text_clip.mp4"), std::string::npos);
}

TEST_F(VideoErrors, ShorterThanOneSecondSamplesNothing) {
  const std::string path = file("short_clip.avi");
  {
    cv::VideoWriter w(path, cv::CAP_FFMPEG, cv::VideoWriter::fourcc('M', 'J', 'P', 'G'), 10.0, cv::Size(32, 16));
    ASSERT_TRUE(w.isOpened());
    for (int i = 0; i < 5; ++i) w.write(cv::Mat(16, 32, CV_8UC3, cv::Scalar(i * 40, 80, 160)));
  }
  const std::string msg = error_of(path);
  EXPECT_NE(msg.find("short_clip.avi"), std::string::npos) << msg;
  EXPECT_NE(msg.find("5 frames"), std::string::npos) << msg;
}

}  // namespace
}  // namespace qalign::data
