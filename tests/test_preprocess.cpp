// Image decoding and CLIP pre-processing against the goldens of the authors' pipeline
// (PIL decode, expand2square, CLIPImageProcessor): qalign-tiny (56 px) and qalign-448.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "data/image_decode.h"
#include "data/media_type.h"
#include "data/pil_resize.h"
#include "data/preprocess.h"
#include "qalign/error.h"
#include "qalign/io/safetensors.h"
#include "tests/support/fixtures.h"

namespace qalign::data {
namespace {

namespace fs = std::filesystem;
using qalign::test::fixture;

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

const io::SafetensorsFile& golden(const std::string& set) {
  static std::map<std::string, std::shared_ptr<io::SafetensorsFile>> files;
  auto& f = files[set];
  if (!f) f = io::SafetensorsFile::open(fixture(set + "/golden.safetensors"));
  return *f;
}

torch::Tensor as_tensor(const Image& img) {
  return torch::from_blob(const_cast<uint8_t*>(img.rgb.data()), {img.height, img.width, 3}, torch::kUInt8)
      .clone();
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

// Runs `f` and returns the qalign::Error message it must throw.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no qalign::Error thrown";
  return "";
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// ---- qalign-tiny ----

TEST(TinyImages, DecodedRgbMatchesPil) {
  for (const std::string file : {"img_wide.png", "img_tall.jpg", "img_big.png"}) {
    const Image img = decode_image(fixture("qalign-tiny/inputs/" + file));
    const torch::Tensor want = golden("qalign-tiny").get("input." + file + ".rgb");
    ASSERT_EQ(want.sizes(), as_tensor(img).sizes()) << file;
    EXPECT_TRUE(torch::equal(as_tensor(img), want)) << file;
  }
}

TEST(TinyImages, PixelValuesMatchEveryCase) {
  const auto meta = read_json(fixture("qalign-tiny/golden.json"));
  const int64_t size = read_json(fixture("qalign-tiny/model/preprocessor_config.json"))["crop_size"];
  int checked = 0;
  for (const auto& [name, c] : meta["cases"].items()) {
    if (!golden("qalign-tiny").contains(name + ".pixel_values") || name == "video") continue;
    std::vector<torch::Tensor> pixels;
    for (const auto& input : c["inputs"])
      pixels.push_back(load_image_tensor(fixture("qalign-tiny/inputs/" + input.get<std::string>()), size));
    const torch::Tensor want = golden("qalign-tiny").get(name + ".pixel_values");
    const torch::Tensor got = torch::stack(pixels);
    ASSERT_EQ(got.sizes(), want.sizes()) << name;
    const double diff = max_abs_diff(got, want);
    EXPECT_LE(diff, 1e-5) << name;
    std::cout << "[ measured ] " << name << ".pixel_values max abs diff " << diff << "\n";
    ++checked;
  }
  EXPECT_GE(checked, 6);
}

// ---- qalign-448 ----

class Photo448 : public ::testing::TestWithParam<std::string> {
 protected:
  std::string file() const { return GetParam(); }
  std::string path() const { return fixture("qalign-448/inputs/" + file()); }
  std::string key(const std::string& suffix) const { return "input." + file() + "." + suffix; }
  const io::SafetensorsFile& g() const { return golden("qalign-448"); }
  nlohmann::json meta() const { return read_json(fixture("qalign-448/golden.json"))["images"][file()]; }
};

TEST_P(Photo448, Decode) {
  const Image img = decode_image(path());
  const auto m = meta();
  EXPECT_EQ(img.width, m["size_wh"][0].get<int>());
  EXPECT_EQ(img.height, m["size_wh"][1].get<int>());
  if (g().contains(key("rgb"))) EXPECT_TRUE(torch::equal(as_tensor(img), g().get(key("rgb"))));
  const torch::Tensor yx = g().get(key("decoded_sample_yx"));
  const torch::Tensor rgb = g().get(key("decoded_sample_rgb"));
  for (int64_t i = 0; i < yx.size(0); ++i) {
    const uint8_t* p = img.pixel(yx[i][1].item<int>(), yx[i][0].item<int>());
    for (int c = 0; c < 3; ++c) ASSERT_EQ(p[c], rgb[i][c].item<uint8_t>()) << "sample " << i;
  }
}

TEST_P(Photo448, ExpandToSquare) {
  const Image img = decode_image(path());
  const Image sq = expand2square(img);
  const auto m = meta()["expand2square"];
  const int side = m["square_size"], ox = m["paste_offset_xy"][0], oy = m["paste_offset_xy"][1];
  ASSERT_EQ(sq.width, side);
  ASSERT_EQ(sq.height, side);
  for (int y = 0; y < side; ++y)
    for (int x = 0; x < side; ++x) {
      const bool inside = x >= ox && x < ox + img.width && y >= oy && y < oy + img.height;
      const uint8_t* want = inside ? img.pixel(x - ox, y - oy) : kPadColor.data();
      ASSERT_TRUE(std::equal(want, want + 3, sq.pixel(x, y))) << "x " << x << " y " << y;
    }
}

TEST_P(Photo448, ResizeIsBitExact) {
  const Image resized = resize_and_crop(expand2square(decode_image(path())), 448);
  const torch::Tensor want = g().get(key("resized_448"));
  const torch::Tensor got = as_tensor(resized);
  ASSERT_EQ(got.sizes(), want.sizes());
  const int64_t differing = got.ne(want).sum().item<int64_t>();
  std::cout << "[ measured ] " << file() << " resized_448: " << differing << " bytes differ, max "
            << max_abs_diff(got, want) << "\n";
  EXPECT_EQ(differing, 0);
}

TEST_P(Photo448, PixelValues) {
  const torch::Tensor pv = load_image_tensor(path(), 448);
  ASSERT_EQ(pv.sizes(), (std::vector<int64_t>{3, 448, 448}));
  const torch::Tensor idx = g().get(key("pixel_values.sample_index"));
  const torch::Tensor want = g().get(key("pixel_values.sample_value"));
  const torch::Tensor got = pv.index({idx.select(1, 0), idx.select(1, 1), idx.select(1, 2)});
  const double diff = max_abs_diff(got, want);
  std::cout << "[ measured ] " << file() << " pixel_values samples max abs diff " << diff << "\n";
  EXPECT_LE(diff, 1e-6);
  const auto stats = meta()["pixel_values_stats"];
  const torch::Tensor flat = pv.to(torch::kFloat64).reshape({3, -1});
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(flat[c].mean().item<double>(), stats["mean"][c].get<double>(), 1e-5);
    EXPECT_NEAR(flat[c].std(/*unbiased=*/false).item<double>(), stats["std"][c].get<double>(), 1e-5);
    EXPECT_NEAR(flat[c].min().item<double>(), stats["min"][c].get<double>(), 1e-6);
    EXPECT_NEAR(flat[c].max().item<double>(), stats["max"][c].get<double>(), 1e-6);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixture, Photo448, ::testing::Values("building.jpg", "baboon.jpg", "smarties.png"),
                         [](const auto& info) { return info.param.substr(0, info.param.find('.')); });

// ---- pieces on their own ----

TEST(ExpandToSquare, TallImagePastesAtFloorOffset) {
  Image tall(3, 6);
  std::fill(tall.rgb.begin(), tall.rgb.end(), 7);
  const Image sq = expand2square(tall);
  ASSERT_EQ(sq.width, 6);
  EXPECT_EQ(sq.pixel(0, 0)[0], 122);
  EXPECT_EQ(sq.pixel(1, 0)[0], 7);  // (6 - 3) // 2 = 1
  EXPECT_EQ(sq.pixel(3, 5)[0], 7);
  EXPECT_EQ(sq.pixel(4, 5)[1], 116);
  EXPECT_EQ(sq.pixel(4, 5)[2], 104);
}

TEST(PilResize, SameSizeIsACopyAndOneAxisPassesAlone) {
  Image img(5, 4);
  for (size_t i = 0; i < img.rgb.size(); ++i) img.rgb[i] = static_cast<uint8_t>(i * 37);
  EXPECT_EQ(pil_resize_bicubic(img, 5, 4).rgb, img.rgb);
  // Only the vertical pass runs: every column is resampled independently of its neighbours.
  const Image taller = pil_resize_bicubic(img, 5, 9);
  Image column(1, 4);
  for (int y = 0; y < 4; ++y) std::copy(img.pixel(2, y), img.pixel(2, y) + 3, column.pixel(0, y));
  const Image column_taller = pil_resize_bicubic(column, 1, 9);
  for (int y = 0; y < 9; ++y) EXPECT_TRUE(std::equal(column_taller.pixel(0, y), column_taller.pixel(0, y) + 3,
                                                     taller.pixel(2, y)));
}

TEST(Preprocess, ShortestEdgeResizeThenCenterCrop) {
  Image wide(40, 20);
  for (size_t i = 0; i < wide.rgb.size(); ++i) wide.rgb[i] = static_cast<uint8_t>(i % 251);
  const Image out = resize_and_crop(wide, 10);
  ASSERT_EQ(out.width, 10);
  ASSERT_EQ(out.height, 10);
  const Image full = pil_resize_bicubic(wide, 20, 10);
  for (int y = 0; y < 10; ++y) EXPECT_TRUE(std::equal(out.pixel(0, y), out.pixel(0, y) + 30, full.pixel(5, y)));
}

TEST(Preprocess, NormalisationArithmetic) {
  Image img(1, 1);
  img.rgb = {0, 128, 255};
  const torch::Tensor t = normalize_clip(img);
  for (int c = 0; c < 3; ++c) {
    const float x = static_cast<float>(img.rgb[c] * (1.0 / 255.0));
    const float want = (x - static_cast<float>(kClipMean[c])) / static_cast<float>(kClipStd[c]);
    EXPECT_EQ(t[c][0][0].item<float>(), want);
  }
}

// ---- decoder edge cases ----

TEST(DecodeImage, GreyscalePngIsReplicated) {
  test::ScratchDir dir;
  cv::Mat grey(3, 4, CV_8UC1);
  for (int i = 0; i < 12; ++i) grey.data[i] = static_cast<uint8_t>(i * 20);
  ASSERT_TRUE(cv::imwrite(dir.file("grey.png"), grey));
  const Image img = decode_image(dir.file("grey.png"));
  ASSERT_EQ(img.width, 4);
  ASSERT_EQ(img.height, 3);
  for (int i = 0; i < 12; ++i)
    for (int c = 0; c < 3; ++c) EXPECT_EQ(img.rgb[i * 3 + c], grey.data[i]);
}

TEST(DecodeImage, RgbaPngDropsAlpha) {
  test::ScratchDir dir;
  cv::Mat bgra(2, 3, CV_8UC4);
  for (int i = 0; i < 6; ++i) {
    auto* p = bgra.ptr<uint8_t>() + i * 4;
    p[0] = static_cast<uint8_t>(10 + i);   // B
    p[1] = static_cast<uint8_t>(100 + i);  // G
    p[2] = static_cast<uint8_t>(200 + i);  // R
    p[3] = static_cast<uint8_t>(i * 50);   // alpha, 0 included: not composited
  }
  ASSERT_TRUE(cv::imwrite(dir.file("rgba.png"), bgra));
  const Image img = decode_image(dir.file("rgba.png"));
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(img.rgb[i * 3 + 0], 200 + i);
    EXPECT_EQ(img.rgb[i * 3 + 1], 100 + i);
    EXPECT_EQ(img.rgb[i * 3 + 2], 10 + i);
  }
}

TEST(DecodeImage, SixteenBitColourKeepsHighByte) {
  test::ScratchDir dir;
  cv::Mat bgr(1, 2, CV_16UC3);
  const uint16_t values[6] = {0x12FF, 0x3400, 0xFF80, 0x0001, 0x80FF, 0x7F7F};
  std::copy(values, values + 6, bgr.ptr<uint16_t>());
  ASSERT_TRUE(cv::imwrite(dir.file("deep.png"), bgr));
  const Image img = decode_image(dir.file("deep.png"));
  const uint8_t want[6] = {0xFF, 0x34, 0x12, 0x7F, 0x80, 0x00};  // RGB = high bytes of B,G,R swapped
  for (int i = 0; i < 6; ++i) EXPECT_EQ(img.rgb[i], want[i]) << i;
}

TEST(DecodeImage, SixteenBitGreyClipsLikePilModeI) {
  test::ScratchDir dir;
  cv::Mat grey(1, 3, CV_16UC1);
  grey.at<uint16_t>(0, 0) = 17;
  grey.at<uint16_t>(0, 1) = 255;
  grey.at<uint16_t>(0, 2) = 40000;
  ASSERT_TRUE(cv::imwrite(dir.file("grey16.png"), grey));
  const Image img = decode_image(dir.file("grey16.png"));
  const uint8_t want[3] = {17, 255, 255};
  for (int x = 0; x < 3; ++x)
    for (int c = 0; c < 3; ++c) EXPECT_EQ(img.pixel(x, 0)[c], want[x]);
}

TEST(DecodeImage, TruncatedJpegIsAnError) {
  test::ScratchDir dir;
  const std::string bytes = read_bytes(fixture("qalign-448/inputs/building.jpg"));
  write_bytes(dir.file("cut_building.jpg"), bytes.substr(0, bytes.size() / 2));
  const std::string msg = error_of([&] { decode_image(dir.file("cut_building.jpg")); });
  EXPECT_NE(msg.find("cut_building.jpg"), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
}

TEST(DecodeImage, TruncatedPngIsAnError) {
  test::ScratchDir dir;
  const std::string bytes = read_bytes(fixture("qalign-448/inputs/smarties.png"));
  write_bytes(dir.file("cut_smarties.png"), bytes.substr(0, bytes.size() - 100));
  const std::string msg = error_of([&] { decode_image(dir.file("cut_smarties.png")); });
  EXPECT_NE(msg.find("cut_smarties.png"), std::string::npos) << msg;
}

TEST(DecodeImage, EmptyMissingAndGarbageFilesAreErrors) {
  test::ScratchDir dir;
  write_bytes(dir.file("empty.jpg"), "");
  write_bytes(dir.file("garbage.png"), "this is not an image at all");
  for (const std::string name : {"empty.jpg", "garbage.png", "missing.jpg"}) {
    const std::string msg = error_of([&] { decode_image(dir.file(name)); });
    EXPECT_NE(msg.find(name), std::string::npos) << msg;
  }
  EXPECT_NE(error_of([&] { decode_image(dir.file("empty.jpg")); }).find("empty"), std::string::npos);
}

TEST(DecodeImage, HugeDimensionsAreRefusedBeforeDecoding) {
  test::ScratchDir dir;
  // A PNG signature and an IHDR claiming 100000 x 100000 pixels; nothing else is read.
  std::string png("\x89PNG\r\n\x1a\n", 8);
  png += std::string("\0\0\0\x0dIHDR", 8);
  png += std::string("\0\x01\x86\xa0\0\x01\x86\xa0\x08\x02\0\0\0", 13);
  png += std::string("\0\0\0\0", 4);
  write_bytes(dir.file("bomb.png"), png);
  const std::string msg = error_of([&] { decode_image(dir.file("bomb.png")); });
  EXPECT_NE(msg.find("bomb.png"), std::string::npos) << msg;
  EXPECT_NE(msg.find("100000x100000"), std::string::npos) << msg;
}

TEST(IsVideoPath, ByExtensionAndContent) {
  for (const std::string p : {"a.avi", "b.MP4", "c.mkv", "d.mov", "e.webm", "/x/y.m4v"}) EXPECT_TRUE(is_video_path(p)) << p;
  for (const std::string p : {"a.jpg", "b.png", "c.txt", "noext"}) EXPECT_FALSE(is_video_path(p)) << p;
  test::ScratchDir dir;
  write_bytes(dir.file("clip.bin"), read_bytes(fixture("qalign-tiny/inputs/video.avi")));
  write_bytes(dir.file("clip2.bin"), read_bytes(fixture("qalign-tiny/inputs/video.mp4")));
  write_bytes(dir.file("still.bin"), read_bytes(fixture("qalign-tiny/inputs/img_wide.png")));
  EXPECT_TRUE(is_video_path(dir.file("clip.bin")));
  EXPECT_TRUE(is_video_path(dir.file("clip2.bin")));
  EXPECT_FALSE(is_video_path(dir.file("still.bin")));
}

}  // namespace
}  // namespace qalign::data
