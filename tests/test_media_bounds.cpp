// Issue 20's media that cost unbounded time or memory, or were misread: each runs the real
// `qalign score` and must end within 20 s under 1.5 GB with a message naming the file and the
// problem, or score. A few decoder-level checks sit beside them where the pixels are the point.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/videoio.hpp>
#include <sstream>

#include "data/image_decode.h"
#include "data/video.h"
#include "qalign/base/error.h"
#include "qalign/media_type.h"
#include "tests/support/bounds.h"
#include "tests/support/fixtures.h"

namespace qalign::data {
namespace {

using test::be32;
using test::expect_bounded;
using test::expect_refused;
using test::le32;

// The table row of `path`: everything after the path, e.g. "image 3.6474 0.6618 good ...".
std::string row_of(const std::string& output, const std::string& path) {
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(path + " ", 0) != 0) continue;
    const auto rest = line.find_first_not_of(' ', path.size());
    return rest == std::string::npos ? "" : line.substr(rest);
  }
  return "";
}

void expect_scored(const test::Measured& m, const std::string& path, const std::string& media) {
  expect_bounded(m, path);
  EXPECT_EQ(m.exit_code, 0) << m.output;
  EXPECT_EQ(row_of(m.output, path).rfind(media + " ", 0), 0u) << m.output;
}

// The fixture AVI (8 frames at 2 fps) with its stream header's dwScale/dwRate set to scale/rate.
std::string avi_with_rate(const test::ScratchDir& d, const std::string& name, uint32_t scale, uint32_t rate) {
  std::string avi = test::read_file(test::fixture("qalign-tiny/inputs/video.avi"));
  EXPECT_EQ(avi.substr(0x64, 4), "strh");
  avi.replace(0x80, 8, le32(scale) + le32(rate));
  test::write_file(d.file(name), avi);
  return d.file(name);
}

// A width x height PNG of one colour: a few hundred bytes however long the strip, as the issue's.
std::string png_strip(const test::ScratchDir& d, int width, int height) {
  const cv::Mat m(height, width, CV_8UC3, cv::Scalar(30, 90, 200));
  const std::string path = d.file("strip_" + std::to_string(width) + "x" + std::to_string(height) + ".png");
  EXPECT_TRUE(cv::imwrite(
      path, m, {cv::IMWRITE_PNG_COMPRESSION, 9, cv::IMWRITE_PNG_STRATEGY, cv::IMWRITE_PNG_STRATEGY_DEFAULT}));
  return path;
}

// A valid 3x2 GIF89a, four palette colours. LZW codes are 3 bits: a clear code every two pixels
// keeps the table from growing to 4-bit codes.
std::string tiny_gif() {
  std::string gif = "GIF89a";
  gif += std::string("\x03\x00\x02\x00", 4);  // logical screen 3x2
  gif += std::string("\xA1\x00\x00", 3);      // global colour table of 4 entries, 2 bits per colour
  gif += std::string("\xFF\x00\x00\x00\xFF\x00\x00\x00\xFF\xFF\xFF\xFF", 12);
  gif += std::string("\x2C\x00\x00\x00\x00\x03\x00\x02\x00\x00", 10);  // image descriptor
  const int clear = 4, end = 5, pixels[6] = {0, 1, 2, 3, 2, 1};
  std::vector<int> codes;
  for (int i = 0; i < 6; i += 2) codes.insert(codes.end(), {clear, pixels[i], pixels[i + 1]});
  codes.push_back(end);
  std::string data;
  uint32_t bits = 0;
  int held = 0;
  for (const int c : codes) {
    bits |= uint32_t(c) << held;
    for (held += 3; held >= 8; held -= 8, bits >>= 8) data += char(bits & 0xFF);
  }
  if (held > 0) data += char(bits & 0xFF);
  gif += '\x02';  // LZW minimum code size
  gif += char(data.size()) + data + '\0';
  gif += ';';
  return gif;
}

// `jpeg` with an APP1 Exif segment right after SOI whose only tag is Orientation = `orientation`.
std::string with_exif_orientation(const std::string& jpeg, uint16_t orientation) {
  std::string tiff = "MM" + std::string("\x00\x2A", 2) + be32(8);  // big-endian TIFF, IFD at 8
  tiff += std::string("\x00\x01", 2);                              // one entry
  tiff += std::string("\x01\x12\x00\x03", 4) + be32(1);            // Orientation, SHORT, 1 value
  tiff += std::string{char(orientation >> 8), char(orientation)} + std::string(2, '\0');
  tiff += be32(0);  // no next IFD
  const std::string body = std::string("Exif\0\0", 6) + tiff;
  const size_t length = body.size() + 2;
  const std::string app1 = std::string("\xFF\xE1", 2) + char(length >> 8) + char(length & 0xFF) + body;
  return jpeg.substr(0, 2) + app1 + jpeg.substr(2);
}

// ---- 1: a video whose header says 1/2^31 frames per second ----

TEST(MediaBounds, AviAtOneOverTwoToThe31FpsIsRefusedBeforeDecoding) {
  test::ScratchDir d;
  const std::string path = avi_with_rate(d, "slow.avi", 0x7fffffff, 1);
  expect_refused(test::score_with_tiny_model(path), path, "over the 600 s limit");
  try {
    sample_video(path);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("8 frames by its header"), std::string::npos) << e.what();
  }
}

TEST(MediaBounds, AviWithoutAFrameCountIsRefusedAtItsFirstFrame) {
  test::ScratchDir d;
  std::string avi = test::read_file(avi_with_rate(d, "slow.avi", 0x7fffffff, 1));
  avi.replace(0x30, 4, le32(0));  // avih dwTotalFrames
  avi.replace(0x8c, 4, le32(0));  // strh dwLength
  test::write_file(d.file("nolength.avi"), avi);
  const std::string path = d.file("nolength.avi");
  expect_refused(test::score_with_tiny_model(path), path, "1 frames decoded");
}

// ---- 2: a 1x40000 picture is padded to a square only implicitly ----

TEST(MediaBounds, OneBy40000PngScoresInBoundedMemory) {
  test::ScratchDir d;
  const std::string path = png_strip(d, 1, 40000);
  EXPECT_LT(test::read_file(path).size(), 1000u);
  expect_scored(test::score_with_tiny_model(path), path, "image");
}

TEST(MediaBounds, OneBy100000PngScoresInBoundedMemory) {
  test::ScratchDir d;
  const std::string path = png_strip(d, 100000, 1);
  expect_scored(test::score_with_tiny_model(path), path, "image");
}

TEST(MediaBounds, PngOverThePixelLimitIsRefusedBeforeDecoding) {
  test::ScratchDir d;
  const std::string ihdr = "IHDR" + be32(1) + be32(200000000) + std::string("\x08\x02\x00\x00\x00", 5);
  test::write_file(d.file("tall.png"),
                   std::string("\x89PNG\r\n\x1a\n", 8) + be32(13) + ihdr + be32(0) + be32(0) + "IEND" + be32(0));
  expect_refused(test::score_with_tiny_model(d.file("tall.png")), d.file("tall.png"),
                 "1x200000000 pixels, over the 178956970-pixel limit");
}

// ---- 3: a FIFO never reaches open() ----

TEST(MediaBounds, FifoAsImageOrVideoIsRefused) {
  test::ScratchDir d;
  for (const std::string name : {"pipe.png", "pipe.mp4", "pipe"}) {
    const std::string path = d.file(name);
    ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
    expect_refused(test::score_with_tiny_model(path), path,
                   "cannot open file: it is a FIFO (named pipe), not a regular file");
  }
}

TEST(MediaBounds, FolderGivenAsVideoIsRefused) {
  test::ScratchDir d;
  std::filesystem::create_directory(d.file("clip.mp4"));
  EXPECT_FALSE(is_video_path(d.file("nothing_here.png")));
  try {
    sample_video(d.file("clip.mp4"));
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), d.file("clip.mp4") + ": cannot open file: it is a folder, not a regular file");
  }
}

// ---- 4: a PNG named .mp4 is the picture its bytes are ----

TEST(MediaBounds, PngNamedMp4ScoresAsTheImage) {
  test::ScratchDir d;
  const std::string png = test::fixture("qalign-tiny/inputs/img_wide.png");
  test::write_file(d.file("still.mp4"), test::read_file(png));
  EXPECT_FALSE(is_video_path(d.file("still.mp4")));
  test::write_file(d.file("clip.png"), test::read_file(test::fixture("qalign-tiny/inputs/video.avi")));
  EXPECT_TRUE(is_video_path(d.file("clip.png")));
  const test::Measured renamed = test::score_with_tiny_model(d.file("still.mp4"));
  expect_scored(renamed, d.file("still.mp4"), "image");
  // The same numbers as the file under its own name.
  const test::Measured original = test::score_with_tiny_model(png);
  EXPECT_EQ(row_of(renamed.output, d.file("still.mp4")), row_of(original.output, png));
}

// ---- 5: GIF is refused with what to do ----

TEST(MediaBounds, GifIsRefusedWithAConversionHint) {
  test::ScratchDir d;
  test::write_file(d.file("anim.gif"), tiny_gif());
  const std::string path = d.file("anim.gif");
  // The bytes are a real GIF: FFmpeg (this machine's OpenCV has it) reads its 3x2 frame.
  cv::VideoCapture cap(path, cv::CAP_FFMPEG);
  cv::Mat frame;
  ASSERT_TRUE(cap.read(frame));
  ASSERT_EQ(frame.cols, 3);
  ASSERT_EQ(frame.rows, 2);
  EXPECT_EQ(frame.at<cv::Vec3b>(0, 0), cv::Vec3b(0, 0, 255));      // palette 0, red, as BGR
  EXPECT_EQ(frame.at<cv::Vec3b>(1, 0), cv::Vec3b(255, 255, 255));  // palette 3, white
  expect_refused(test::score_with_tiny_model(path), path, "GIF is not supported: convert it to PNG first");
  test::write_file(d.file("anim.png"), tiny_gif());  // judged by content, not by name
  expect_refused(test::score_with_tiny_model(d.file("anim.png")), d.file("anim.png"), "GIF is not supported");
}

// ---- 6: EXIF orientation is ignored, as PIL's Image.open(...).convert('RGB') ignores it ----

TEST(MediaBounds, ExifOrientationIsNotApplied) {
  test::ScratchDir d;
  const std::string plain = test::fixture("qalign-tiny/inputs/img_tall.jpg");
  test::write_file(d.file("rotated.jpg"), with_exif_orientation(test::read_file(plain), 6));
  const std::string tagged = d.file("rotated.jpg");
  // The tag is real: OpenCV's default decode turns the picture a quarter.
  const cv::Mat as_opencv = cv::imread(tagged, cv::IMREAD_COLOR);
  const Image want = decode_image(plain);
  ASSERT_EQ(as_opencv.cols, want.height);
  ASSERT_EQ(as_opencv.rows, want.width);
  ASSERT_NE(want.width, want.height);
  const Image got = decode_image(tagged);
  EXPECT_EQ(got.width, want.width);
  EXPECT_EQ(got.height, want.height);
  EXPECT_EQ(got.rgb, want.rgb);
  const test::Measured m = test::score_with_tiny_model(tagged);
  expect_scored(m, tagged, "image");
  EXPECT_EQ(row_of(m.output, tagged), row_of(test::score_with_tiny_model(plain).output, plain));
}

}  // namespace
}  // namespace qalign::data
