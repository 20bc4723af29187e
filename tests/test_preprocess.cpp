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
#include "data/pil_resize.h"
#include "data/preprocess.h"
#include "qalign/base/error.h"
#include "qalign/io/safetensors.h"
#include "qalign/media_type.h"
#include "tests/support/fixtures.h"
#include "tests/support/goldens.h"

namespace qalign::data {
namespace {

namespace fs = std::filesystem;
using qalign::test::fixture;

using test::as_tensor;
using test::error_of;
using test::golden;
using test::max_abs_diff;
using test::read_json;

void write_bytes(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

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
  for (int y = 0; y < 9; ++y)
    EXPECT_TRUE(std::equal(column_taller.pixel(0, y), column_taller.pixel(0, y) + 3, taller.pixel(2, y)));
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

// ---- the implicit padding against the explicit square ----

// Today's resize before the padding became implicit, tap by tap over a built canvas: the oracle.
namespace reference {

// Pillow keeps 8 bits for the sample and 2 for headroom in a 32-bit accumulator.
constexpr int kPrecisionBits = 32 - 8 - 2;
constexpr double kBicubicSupport = 2.0;

// Keys' cubic with a = -0.5, as Pillow's bicubic_filter.
double bicubic(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// For each output position along one axis: the first input sample, how many follow, and their
// fixed-point weights (ksize slots per position, unused slots zero).
struct Taps {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<int32_t> weights;
};

// Pillow's precompute_coeffs for the box [0, in_size) followed by normalize_coeffs_8bpc. The box
// edges are floats in Pillow; whole-image sizes are exact in float, so double is equivalent.
Taps make_taps(int in_size, int out_size) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);  // widen the kernel when shrinking: antialias
  const double support = kBicubicSupport * filterscale;
  Taps t;
  t.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  t.first.resize(out_size);
  t.count.resize(out_size);
  t.weights.assign(static_cast<size_t>(out_size) * t.ksize, 0);
  std::vector<double> k(t.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    // Truncating casts, as in C; the clamps make their rounding direction irrelevant below 0.
    const int xmin = std::max(static_cast<int>(center - support + 0.5), 0);
    const int xmax = std::min(static_cast<int>(center + support + 0.5), in_size) - xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      k[x] = bicubic((x + xmin - center + 0.5) * ss);
      ww += k[x];
    }
    int32_t* w = &t.weights[static_cast<size_t>(xx) * t.ksize];
    for (int x = 0; x < xmax; ++x) {
      const double v = ww != 0.0 ? k[x] / ww : k[x];
      const double scaled = v * (1 << kPrecisionBits);
      w[x] = static_cast<int32_t>(v < 0 ? -0.5 + scaled : 0.5 + scaled);
    }
    t.first[xx] = xmin;
    t.count[xx] = xmax;
  }
  return t;
}

// Rounds away the fraction (the accumulator starts at one half) and clamps to a byte.
uint8_t clip8(int64_t acc) { return static_cast<uint8_t>(std::clamp<int64_t>(acc >> kPrecisionBits, 0, 255)); }

Image horizontal_pass(const Image& in, int out_width, const Taps& t) {
  Image out(out_width, in.height);
  for (int y = 0; y < in.height; ++y) {
    for (int xx = 0; xx < out_width; ++xx) {
      const int32_t* w = &t.weights[static_cast<size_t>(xx) * t.ksize];
      const uint8_t* src = in.pixel(t.first[xx], y);
      int64_t acc[3] = {1 << (kPrecisionBits - 1), 1 << (kPrecisionBits - 1), 1 << (kPrecisionBits - 1)};
      for (int x = 0; x < t.count[xx]; ++x, src += 3)
        for (int c = 0; c < 3; ++c) acc[c] += int64_t{src[c]} * w[x];
      uint8_t* dst = out.pixel(xx, y);
      for (int c = 0; c < 3; ++c) dst[c] = clip8(acc[c]);
    }
  }
  return out;
}

Image vertical_pass(const Image& in, int out_height, const Taps& t) {
  Image out(in.width, out_height);
  const size_t row = static_cast<size_t>(in.width) * 3;
  for (int yy = 0; yy < out_height; ++yy) {
    const int32_t* w = &t.weights[static_cast<size_t>(yy) * t.ksize];
    const uint8_t* top = in.pixel(0, t.first[yy]);
    uint8_t* dst = out.pixel(0, yy);
    for (size_t i = 0; i < row; ++i) {
      int64_t acc = 1 << (kPrecisionBits - 1);
      for (int y = 0; y < t.count[yy]; ++y) acc += int64_t{top[y * row + i]} * w[y];
      dst[i] = clip8(acc);
    }
  }
  return out;
}

Image reference_resize(const Image& in, int out_width, int out_height) {
  if (in.width <= 0 || in.height <= 0 || out_width <= 0 || out_height <= 0)
    throw std::invalid_argument("pil_resize_bicubic: sizes must be positive");
  // Pillow skips the pass along an axis whose size does not change; horizontal runs first.
  if (out_width == in.width)
    return out_height == in.height ? in : vertical_pass(in, out_height, make_taps(in.height, out_height));
  Image wide = horizontal_pass(in, out_width, make_taps(in.width, out_width));
  if (out_height == in.height) return wide;
  return vertical_pass(wide, out_height, make_taps(in.height, out_height));
}

}  // namespace reference

Image random_image(int w, int h, uint32_t seed) {
  Image img(w, h);
  for (auto& v : img.rgb) {
    seed = seed * 1664525u + 1013904223u;
    v = static_cast<uint8_t>(seed >> 24);
  }
  return img;
}

// An odd mix: thin strips both ways, near-squares, a square, one pixel.
const std::vector<std::pair<int, int>> kOddShapes = {{1, 40}, {40, 1}, {3, 500}, {500, 3}, {7, 9},
                                                     {9, 7},  {2, 3},  {1, 1},   {5, 5},   {64, 3}};

TEST(ImplicitPadding, SquareResizeIsBitExactAgainstTheBuiltSquare) {
  for (const auto& [w, h] : kOddShapes) {
    const Image img = random_image(w, h, static_cast<uint32_t>(w * 1000 + h));
    const int side = std::max(w, h);
    for (const int size : {1, 4, 56, 448, side, side + 3}) {
      const Image want = reference::reference_resize(expand2square(img), size, size);
      const Image got = square_and_resize(img, size);
      ASSERT_EQ(got.width, size);
      ASSERT_EQ(got.height, size);
      EXPECT_EQ(got.rgb, want.rgb) << w << "x" << h << " -> " << size;
      EXPECT_EQ(resize_and_crop(expand2square(img), size).rgb, want.rgb) << w << "x" << h << " -> " << size;
    }
  }
}

TEST(ImplicitPadding, OffCentreCanvasAndOneAxisResizes) {
  const Image img = random_image(7, 9, 7);
  const Canvas canvas{12, 10, 5, 0, {3, 250, 128}};
  Image built(canvas.width, canvas.height);
  for (int y = 0; y < built.height; ++y)
    for (int x = 0; x < built.width; ++x)
      std::copy(canvas.background.begin(), canvas.background.end(), built.pixel(x, y));
  for (int y = 0; y < img.height; ++y)
    std::copy(img.pixel(0, y), img.pixel(0, y) + img.width * 3, built.pixel(canvas.left, canvas.top + y));
  for (const auto& [ow, oh] : std::vector<std::pair<int, int>>{{12, 10}, {12, 4}, {5, 10}, {3, 17}, {30, 2}}) {
    EXPECT_EQ(pil_resize_bicubic(img, canvas, ow, oh).rgb, reference::reference_resize(built, ow, oh).rgb)
        << ow << "x" << oh;
    EXPECT_EQ(pil_resize_bicubic(built, ow, oh).rgb, reference::reference_resize(built, ow, oh).rgb) << ow << "x" << oh;
  }
}

TEST(ImplicitPadding, PreprocessIsBitExactAgainstTheBuiltSquare) {
  for (const auto& [w, h] : kOddShapes) {
    const Image img = random_image(w, h, static_cast<uint32_t>(h * 1000 + w));
    const torch::Tensor want = normalize_clip(reference::reference_resize(expand2square(img), 56, 56));
    EXPECT_TRUE(torch::equal(preprocess_image(img, 56), want)) << w << "x" << h;
  }
}

// A 1x40000 strip's square would be 4.8 GB; implicit, it is the strip and the output.
TEST(ImplicitPadding, ExtremeStripResizesWithoutTheSquare) {
  const Image strip = random_image(1, 40000, 11);
  const Image out = square_and_resize(strip, 448);
  ASSERT_EQ(out.width, 448);
  // Far from the strip every pixel is the padding colour, as in the built square.
  EXPECT_EQ(out.pixel(0, 0)[0], kPadColor[0]);
  EXPECT_EQ(out.pixel(447, 447)[2], kPadColor[2]);
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
  for (const std::string p : {"a.avi", "b.MP4", "c.mkv", "d.mov", "e.webm", "/x/y.m4v"})
    EXPECT_TRUE(is_video_path(p)) << p;
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
