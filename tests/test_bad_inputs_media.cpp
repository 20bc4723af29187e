// Issue 32's pictures and videos whose memory or time the input set, and the one media-type rule:
// each case runs the real `qalign` and must end within 20 s under 1.5 GB with a message naming the
// file and the problem, or score; the time and peak memory of each are printed. Inputs are made
// here (crafted headers, sparse files, OpenCV's encoders), never committed.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>
#include <sstream>
#include <vector>

#include "data/image_decode.h"
#include "data/image_header.h"
#include "data/preprocess.h"
#include "data/video.h"
#include "qalign/base/error.h"
#include "qalign/config/train_config.h"
#include "qalign/label_files.h"
#include "tests/support/bounds.h"
#include "tests/support/fixtures.h"

namespace qalign::data {
namespace {

namespace fs = std::filesystem;

using test::be32;
using test::expect_bounded;
using test::expect_refused;
using test::le16;
using test::le32;

// The media column of `path`'s table row ("image" or "video"), "" when it has no row.
std::string media_of(const std::string& output, const std::string& path) {
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(path + " ", 0) != 0) continue;
    std::istringstream fields(line.substr(path.size()));
    std::string media;
    fields >> media;
    return media;
  }
  return "";
}

void expect_scored(const test::Measured& m, const std::string& path, const std::string& media) {
  expect_bounded(m, path);
  EXPECT_EQ(m.exit_code, 0) << m.output;
  EXPECT_EQ(media_of(m.output, path), media) << m.output;
}

// A little-endian TIFF whose only directory claims `width` x `height`, `samples` samples of
// `bits` bits, padded to `size` bytes (the issue's was 9.5 KB). No strip offsets: nothing decodes.
std::string tiff_header(uint32_t width, uint32_t height, uint16_t samples, uint16_t bits, size_t size) {
  std::string t = "II*" + std::string(1, '\0') + le32(8);
  const std::vector<std::pair<uint16_t, uint32_t>> entries = {{256, width}, {257, height}, {258, bits}, {277, samples}};
  t += le16(static_cast<uint16_t>(entries.size()));
  for (const auto& [tag, value] : entries) t += le16(tag) + le16(4) + le32(1) + le32(value);  // LONG, one value
  t += le32(0);                                                                               // no next directory
  t.resize(size, '\0');
  return t;
}

// A PNG signature and an IHDR of `width` x `height` at `bit_depth` and `colour_type`, then IEND.
std::string png_header(uint32_t width, uint32_t height, uint8_t bit_depth, uint8_t colour_type) {
  const std::string ihdr =
      "IHDR" + be32(width) + be32(height) + std::string{char(bit_depth), char(colour_type)} + std::string(3, '\0');
  return std::string("\x89PNG\r\n\x1a\n", 8) + be32(13) + ihdr + be32(0) + be32(0) + "IEND" + be32(0);
}

std::vector<uint8_t> encode(const std::string& ext, const cv::Mat& m, const std::vector<int>& params = {}) {
  std::vector<uint8_t> bytes;
  EXPECT_TRUE(cv::imencode(ext, m, bytes, params)) << ext;
  return bytes;
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  test::write_file(path, std::string(bytes.begin(), bytes.end()));
}

// Random pixels, so that a PNG of them is about as large as the picture is decoded.
cv::Mat noise(int width, int height) {
  cv::Mat m(height, width, CV_8UC3);
  cv::randu(m, 0, 256);
  return m;
}

// A real progressive JPEG whose last scan is repeated until it has `scans` scans in all.
std::string jpeg_with_scans(int scans) {
  const std::vector<uint8_t> progressive = encode(".jpg", noise(16, 16), {cv::IMWRITE_JPEG_PROGRESSIVE, 1});
  const std::string jpeg(progressive.begin(), progressive.end());
  const size_t last_scan = jpeg.rfind("\xFF\xDA");
  const size_t eoi = jpeg.rfind("\xFF\xD9");
  const std::string scan = jpeg.substr(last_scan, eoi - last_scan);
  int have = 0;
  for (size_t at = jpeg.find("\xFF\xDA"); at != std::string::npos; at = jpeg.find("\xFF\xDA", at + 2)) ++have;
  std::string out = jpeg.substr(0, eoi);
  for (int i = have; i < scans; ++i) out += scan;
  return out + jpeg.substr(eoi);
}

// An MJPG AVI of `seconds` frames of `width` x `height` at 1 fps.
std::string write_video(const test::ScratchDir& d, const std::string& name, int width, int height, int seconds) {
  const std::string path = d.file(name);
  cv::VideoWriter writer(path, cv::CAP_FFMPEG, cv::VideoWriter::fourcc('M', 'J', 'P', 'G'), 1.0,
                         cv::Size(width, height));
  EXPECT_TRUE(writer.isOpened()) << path;
  cv::Mat frame(height, width, CV_8UC3);
  for (int i = 0; i < seconds; ++i) {
    frame.setTo(cv::Scalar(20 * i % 256, 120, 200));
    cv::circle(frame, {width / 2, height / 2}, height / 4, cv::Scalar(0, 0, 0), -1);
    writer.write(frame);
  }
  return path;
}

// ---- pictures: budgets from stat and from the header, before any large allocation ----

TEST(BadInputsMedia, TiffClaiming30000SquaredIsRefusedFromItsHeader) {
  test::ScratchDir d;
  const std::string path = d.file("huge.tif");
  test::write_file(path, tiff_header(30000, 30000, 3, 8, 9728));
  expect_refused(test::score_with_tiny_model(path), path, "30000x30000 pixels, over the 178956970-pixel limit");
}

TEST(BadInputsMedia, DeepTiffOverTheDecodedBudgetIsRefusedFromItsHeader) {
  test::ScratchDir d;
  const std::string path = d.file("deep.tiff");
  // 144 million pixels (under PIL's limit) of 16-bit RGBA: 8 bytes a pixel before our copy.
  test::write_file(path, tiff_header(12000, 12000, 4, 16, 512));
  const test::Measured m = test::score_with_tiny_model(path);
  expect_refused(m, path, "decoding this 12000x12000 TIFF needs about");
  EXPECT_TRUE(test::output_has(m, "over the 1024 MB decoded-bytes budget for a picture (raise max_image_decoded_mb"))
      << m.output;
}

TEST(BadInputsMedia, SixteenBitRgbaPngOverTheDecodedBudgetIsRefusedFromItsHeader) {
  test::ScratchDir d;
  const std::string path = d.file("deep.png");
  test::write_file(path, png_header(13000, 13000, 16, 6));
  expect_refused(test::score_with_tiny_model(path), path,
                 "decoding this 13000x13000 PNG needs about 1773 MB, over the 1024 MB");
  // The same size at 8-bit grey is within the budget: the bytes per pixel come from the header.
  const std::string grey_png = png_header(13000, 13000, 8, 0);
  const auto grey = read_image_header(std::vector<uint8_t>(grey_png.begin(), grey_png.end()));
  ASSERT_TRUE(grey);
  EXPECT_EQ(grey->decoder_bytes, 13000.0 * 13000.0);
}

TEST(BadInputsMedia, SparseFileOverTheFileBudgetIsRefusedFromStat) {
  test::ScratchDir d;
  const std::string path = d.file("sparse.png");
  test::write_file(path, std::string("\x89PNG\r\n\x1a\n", 8));
  fs::resize_file(path, uint64_t{2560} << 20);  // 2.5 GB of holes: nothing is written
  expect_refused(test::score_with_tiny_model(path), path,
                 "image file is 2560 MB, over the 512 MB file-size budget for a picture");
}

TEST(BadInputsMedia, JpegWith20000ScansIsRefusedFromItsHeader) {
  test::ScratchDir d;
  const std::string path = d.file("scans.jpg");
  test::write_file(path, jpeg_with_scans(20000));
  std::cout << "[ measured ] " << path << ": " << fs::file_size(path) / 1024 << " KB\n";
  expect_refused(test::score_with_tiny_model(path), path, "JPEG has 20000 scans, over the 100-scan limit");
  // An encoder's progressive JPEG (about 10 scans) scores.
  test::write_file(d.file("progressive.jpg"), jpeg_with_scans(0));
  expect_scored(test::score_with_tiny_model(d.file("progressive.jpg")), d.file("progressive.jpg"), "image");
}

TEST(BadInputsMedia, BudgetsAreOptionsAndConfigKeys) {
  test::ScratchDir d;
  const std::string path = d.file("noise.png");
  write_bytes(path, encode(".png", noise(1000, 1000)));  // about 3 MB, 6 MB decoded
  expect_scored(test::score_with_tiny_model(path), path, "image");
  expect_refused(test::score_with_tiny_model("--max-image-file-mb 1 " + path), path,
                 "MB, over the 1 MB file-size budget");
  expect_refused(test::score_with_tiny_model("--max-image-decoded-mb 1 " + path), path,
                 "needs about 6 MB, over the 1 MB decoded-bytes");
  const test::Measured zero = test::score_with_tiny_model("--max-image-decoded-mb 0 " + path);
  EXPECT_NE(zero.exit_code, 0) << zero.output;
  EXPECT_NE(zero.output.find("--max-image-decoded-mb"), std::string::npos) << zero.output;
  // The training config's keys, range-checked by name.
  config::TrainConfig c;
  config::apply_override(c, "max_image_file_mb=64");
  config::apply_override(c, "max_image_decoded_mb=2048");
  EXPECT_EQ(c.max_image_file_mb, 64);
  EXPECT_EQ(c.max_image_decoded_mb, 2048);
  EXPECT_NE(test::error_of([&] { config::apply_override(c, "max_image_decoded_mb=0"); }).find("max_image_decoded_mb"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { config::apply_override(c, "max_image_file_mb=2000000"); }).find("max_image_file_mb"),
            std::string::npos);
}

// The training key reaches the trainer's loader: the picture over it is skipped, named, with the key.
TEST(BadInputsMedia, TrainingHoldsPicturesToItsConfigBudget) {
  test::ScratchDir d;
  write_bytes(d.file("noise.png"), encode(".png", noise(1000, 1000)));
  fs::copy_file(test::fixture("qalign-tiny/inputs/img_wide.png"), d.file("wide.png"));
  std::ofstream(d.file("set.json")) << R"([
    {"id": "noise", "image": "noise.png", "conversations": [{"from": "human", "value": "<|image|>"},
                                                            {"from": "gpt", "value": "The quality of the image is bad."}]},
    {"id": "wide", "image": "wide.png", "conversations": [{"from": "human", "value": "<|image|>"},
                                                          {"from": "gpt", "value": "The quality of the image is good."}]}])";
  const test::Measured m = test::run_qalign_measured(
      "train --config " + test::kTinyRecipe + " data_path=" + d.file("set.json") + " image_folder=" + d.path() +
          " output_dir=" + d.file("run") + " max_steps=1 dataloader_shuffle=false max_image_decoded_mb=1",
      60);
  expect_bounded(m, "train");
  EXPECT_TRUE(test::output_has(m, d.file("noise.png") +
                                      ": decoding this 1000x1000 PNG needs about 6 MB, over the "
                                      "1 MB decoded-bytes budget for a picture (raise max_image_decoded_mb"))
      << m.output;
}

// Every format qalign reads has its size and decoder bytes from the header, and decodes as before.
TEST(BadInputsMedia, HeadersOfEveryFormatGiveTheSize) {
  test::ScratchDir d;
  const cv::Mat colour = noise(37, 23);
  cv::Mat grey;
  cv::cvtColor(colour, grey, cv::COLOR_BGR2GRAY);
  cv::Mat deep;
  colour.convertTo(deep, CV_16UC3, 257);
  const std::vector<std::pair<std::string, cv::Mat>> cases = {{".jpg", colour},       {".png", colour},
                                                              {".png", deep},         {".tif", colour},
                                                              {".tiff", deep},        {".bmp", colour},
                                                              {".webp", colour},      {".ppm", colour},
                                                              {".pgm", grey},         {".pbm", grey},
                                                              {".jp2", noise(96, 64)}};  // OpenJPEG's default levels
                                                                                         // need 32 pixels a side
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& [ext, mat] = cases[i];
    SCOPED_TRACE(ext);
    const std::vector<uint8_t> bytes = encode(ext, mat);
    const auto header = read_image_header(bytes);
    ASSERT_TRUE(header);
    EXPECT_EQ(header->width, mat.cols);
    EXPECT_EQ(header->height, mat.rows);
    EXPECT_TRUE(header->complete);
    EXPECT_GE(header->decoder_bytes, static_cast<double>(mat.total() * mat.elemSize()));
    const std::string path = d.file("pic" + std::to_string(i) + ext);
    write_bytes(path, bytes);
    const Image img = decode_image(path);
    EXPECT_EQ(img.width, mat.cols);
    EXPECT_EQ(img.height, mat.rows);
  }
  // Headers claiming huge sizes are refused by the pixel limit before decoding, whatever the format.
  std::string bmp = "BM" + std::string(12, '\0') + le32(40) + le32(100000) + le32(100000) + le16(1) + le16(24);
  bmp.resize(64, '\0');
  test::write_file(d.file("huge.bmp"), bmp);
  EXPECT_NE(test::error_of([&] { decode_image(d.file("huge.bmp")); }).find("100000x100000 pixels, over the"),
            std::string::npos);
  test::write_file(d.file("huge.ppm"), "P6\n# comment\n70000 70000\n255\n");
  EXPECT_NE(test::error_of([&] { decode_image(d.file("huge.ppm")); }).find("70000x70000 pixels, over the"),
            std::string::npos);
  // An unknown format is refused without decoding, naming what is read.
  test::write_file(d.file("picture.pfm"), "Pf\n4 4\n-1\n" + std::string(64, '\0'));
  const std::string unknown = test::error_of([&] { decode_image(d.file("picture.pfm")); });
  EXPECT_NE(unknown.find(d.file("picture.pfm") + ": not a decodable image"), std::string::npos) << unknown;
  EXPECT_NE(unknown.find(kImageFormats), std::string::npos) << unknown;
}

// ---- videos: frames resized as they are decoded ----

TEST(BadInputsMedia, FourKVideoMemoryScalesWithFramesAtModelSizeNot4K) {
  test::ScratchDir d;
  const std::string short_clip = write_video(d, "short_4k.avi", 3840, 2160, 4);
  const std::string long_clip = write_video(d, "long_4k.avi", 3840, 2160, 16);
  const SampledVideo v = sample_video(long_clip, {}, 448);
  ASSERT_EQ(v.frames.size(), 16u);
  for (const Image& f : v.frames) EXPECT_EQ(f.width * f.height, 448 * 448);
  const test::Measured a = test::score_with_tiny_model(short_clip), b = test::score_with_tiny_model(long_clip);
  expect_scored(a, short_clip, "video");
  expect_scored(b, long_clip, "video");
  // 12 more 4K frames held at full size would be 12 x 3840 x 2160 x 3 bytes, about 300 MB (twice
  // that with a copy); at the model's size they are under 1 MB each.
  EXPECT_LT(b.peak_mb - a.peak_mb, 60) << a.peak_mb << " MB for 4 frames, " << b.peak_mb << " MB for 16";
  // A 4K frame is also held to the decoded budget, from the header, before the first is decoded.
  expect_refused(test::score_with_tiny_model("--max-image-decoded-mb 50 " + short_clip), short_clip,
                 "decoding this video's 3840x2160 frames needs about 72 MB, over the 50 MB");
}

// Two MPEG-1 program streams of different sizes, one after the other (as `cat a.mpg b.mpg` makes):
// OpenCV hands out the second's frames stale, at the first's size, and says nothing.
TEST(BadInputsMedia, VideoWhoseFramesChangeSizeIsRefusedNamingTheFrame) {
  test::ScratchDir d;
  std::string joined;
  for (const auto& [name, size] :
       {std::pair{"small.mpg", cv::Size(64, 48)}, std::pair{"large.mpg", cv::Size(96, 64)}}) {
    {
      cv::VideoWriter writer(d.file(name), cv::CAP_FFMPEG, cv::VideoWriter::fourcc('P', 'I', 'M', '1'), 25.0, size);
      ASSERT_TRUE(writer.isOpened()) << name;
      for (int i = 0; i < 30; ++i) writer.write(cv::Mat(size, CV_8UC3, cv::Scalar(8 * i, 100, 200)));
    }
    joined += test::read_file(d.file(name));
  }
  const std::string path = d.file("joined.mpg");
  test::write_file(path, joined);
  expect_refused(test::score_with_tiny_model(path), path, "frame 30: is 96x64 where the frames before it are 64x48");
  expect_scored(test::score_with_tiny_model(d.file("small.mpg")), d.file("small.mpg"), "video");
}

// The resized frames give exactly the pixels preprocessing the full frames gives (the goldens'
// path): the authors decode and resize frame by frame.
TEST(BadInputsMedia, ResizingAsDecodedKeepsThePixels) {
  const std::string clip = test::fixture("qalign-448/inputs/megamind_3s.avi");
  const SampledVideo full = sample_video(clip);
  const torch::Tensor streamed = load_video_tensor(clip, 448);
  ASSERT_EQ(streamed.size(0), static_cast<int64_t>(full.frames.size()));
  for (size_t i = 0; i < full.frames.size(); ++i)
    EXPECT_TRUE(torch::equal(streamed[static_cast<int64_t>(i)], preprocess_image(full.frames[i], 448))) << i;
}

// ---- one media-type rule: the file's bytes, else its name, for score, eval and train alike ----

TEST(BadInputsMedia, EvalAndTrainTellVideosByContentAsScoreDoes) {
  test::ScratchDir d;
  const std::string inputs = test::fixture("qalign-tiny/inputs");
  fs::copy_file(inputs + "/video.avi", d.file("clip.wmv"));
  fs::copy_file(inputs + "/video.avi", d.file("clip.avi"));
  fs::copy_file(inputs + "/img_wide.png", d.file("still.mp4"));
  fs::copy_file(inputs + "/img_tall.jpg", d.file("photo.jpg"));
  expect_scored(test::score_with_tiny_model(d.file("clip.wmv")), d.file("clip.wmv"), "video");
  std::ofstream(d.file("set.json")) << R"([{"image": "clip.wmv", "gt_score": 2.0},
    {"image": "clip.avi", "gt_score": 3.0}, {"image": "still.mp4", "gt_score": 4.0},
    {"image": "photo.jpg", "gt_score": 1.0}])";
  const test::Measured m =
      test::run_qalign_measured("eval --model " + test::kTinyModel + " --data " + d.file("set.json") +
                                    " --image-folder " + d.path() + " --out " + d.file("eval"),
                                60);
  expect_bounded(m, "eval");
  ASSERT_EQ(m.exit_code, 0) << m.output;
  std::map<std::string, double> scores;
  for (const auto& row : test::read_jsonl(d.file("eval/predictions.jsonl")))
    scores[row["image"].get<std::string>()] = row["score"].get<double>();
  ASSERT_EQ(scores.size(), 4u) << m.output;  // none dropped
  EXPECT_NEAR(scores["clip.wmv"], scores["clip.avi"], 1e-5);
  // Training records: the same rule on the resolved path.
  const auto records = parse_training_records(nlohmann::json::parse(R"([
      {"image": "clip.wmv", "conversations": [{"from": "human", "value": "<|image|>"}, {"from": "gpt", "value": "a"}]},
      {"image": "still.mp4", "conversations": [{"from": "human", "value": "<|image|>"}, {"from": "gpt", "value": "a"}]},
      {"image": "missing.mkv", "conversations": [{"from": "human", "value": "<|image|>"}, {"from": "gpt", "value": "a"}]},
      {"image": "photo.jpg", "conversations": [{"from": "human", "value": "<|image|>"}, {"from": "gpt", "value": "a"}]}
    ])"),
                                              "train.json", d.path());
  EXPECT_TRUE(records[0].is_video());
  EXPECT_FALSE(records[1].is_video());
  EXPECT_TRUE(records[2].is_video());  // a file that is not there is judged by its name
  EXPECT_FALSE(records[3].is_video());
}

}  // namespace
}  // namespace qalign::data
