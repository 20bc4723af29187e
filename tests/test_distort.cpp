// The demo's synthetic distortions: each grows with its strength by a measure that does not
// depend on how it is implemented, strength 0 leaves the picture alone, and seeded ones repeat.
#include <gtest/gtest.h>

#include <cmath>

#include "data/distort.h"
#include "data/image_decode.h"
#include "qalign/base/error.h"
#include "tests/support/fixtures.h"

using namespace qalign;
using namespace qalign::data;

namespace {

const Image& photo() {
  static const Image img = resize_short_side(decode_image(test::fixture("qalign-448/inputs/building.jpg")), 128);
  return img;
}

double luma(const Image& img, int x, int y) {
  const uint8_t* p = img.pixel(x, y);
  return 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
}

// Mean squared difference between horizontal and vertical neighbours: fine detail.
double gradient_energy(const Image& img) {
  double e = 0;
  for (int y = 0; y + 1 < img.height; ++y)
    for (int x = 0; x + 1 < img.width; ++x) {
      const double gx = luma(img, x + 1, y) - luma(img, x, y), gy = luma(img, x, y + 1) - luma(img, x, y);
      e += gx * gx + gy * gy;
    }
  return e / ((img.width - 1.0) * (img.height - 1.0));
}

double rms_difference(const Image& a, const Image& b) {
  double s = 0;
  for (size_t i = 0; i < a.rgb.size(); ++i) s += (double(a.rgb[i]) - b.rgb[i]) * (double(a.rgb[i]) - b.rgb[i]);
  return std::sqrt(s / a.rgb.size());
}

double luma_std(const Image& img) {
  double s = 0, ss = 0;
  const double n = double(img.width) * img.height;
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < img.width; ++x) {
      s += luma(img, x, y);
      ss += luma(img, x, y) * luma(img, x, y);
    }
  return std::sqrt(ss / n - (s / n) * (s / n));
}

double mean_channel(const Image& img, int c) {
  double s = 0;
  for (size_t i = c; i < img.rgb.size(); i += 3) s += img.rgb[i];
  return s / (img.rgb.size() / 3);
}

// Distance of the mean colour from the original's, with the mean brightness change removed.
double cast_size(const Image& img) {
  double d[3], mean = 0;
  for (int c = 0; c < 3; ++c) mean += (d[c] = mean_channel(img, c) - mean_channel(photo(), c)) / 3;
  return std::sqrt((d[0] - mean) * (d[0] - mean) + (d[1] - mean) * (d[1] - mean) + (d[2] - mean) * (d[2] - mean));
}

// f(distort(photo, d, s)) over s = 0, 0.25, … 1 must move strictly in one direction.
template <typename Measure>
void expect_monotone(Distortion d, Measure f, bool increasing) {
  double prev = f(distort(photo(), d, 0.0, 7));
  for (double s : {0.25, 0.5, 0.75, 1.0}) {
    const double v = f(distort(photo(), d, s, 7));
    if (increasing)
      EXPECT_GT(v, prev) << distortion_name(d) << " at strength " << s;
    else
      EXPECT_LT(v, prev) << distortion_name(d) << " at strength " << s;
    prev = v;
  }
}

}  // namespace

TEST(Distort, StrongerBlurAndDownscalingLoseDetail) {
  expect_monotone(Distortion::kBlur, gradient_energy, false);
  expect_monotone(Distortion::kDownscale, gradient_energy, false);
}

TEST(Distort, StrongerNoiseAndJpegMoveFurtherFromTheOriginal) {
  const auto from_original = [](const Image& img) { return rms_difference(img, photo()); };
  expect_monotone(Distortion::kNoise, from_original, true);
  expect_monotone(Distortion::kJpeg, from_original, true);
}

TEST(Distort, ContrastShrinksAndCastGrowsWithStrength) {
  expect_monotone(Distortion::kContrast, luma_std, false);
  expect_monotone(Distortion::kColorShift, cast_size, true);
  // The cast runs orthogonal to grey: brightness stays (up to clipping at 0 and 255).
  const auto cast = distort(photo(), Distortion::kColorShift, 1.0, 3);
  double before = 0, after = 0;
  for (int c = 0; c < 3; ++c) {
    before += mean_channel(photo(), c);
    after += mean_channel(cast, c);
  }
  EXPECT_NEAR(after / 3, before / 3, 3.0);
}

TEST(Distort, StrengthZeroLeavesThePictureAlone) {
  for (Distortion d : all_distortions()) {
    if (d == Distortion::kJpeg) continue;  // quality 95: close, not equal
    EXPECT_EQ(distort(photo(), d, 0.0, 11).rgb, photo().rgb) << distortion_name(d);
  }
  EXPECT_LT(rms_difference(distort(photo(), Distortion::kJpeg, 0.0), photo()), 5.0);  // 4:2:0 chroma costs a little
}

TEST(Distort, SeededDistortionsRepeatAndSeedsDiffer) {
  for (Distortion d : {Distortion::kNoise, Distortion::kColorShift}) {
    EXPECT_EQ(distort(photo(), d, 0.6, 42).rgb, distort(photo(), d, 0.6, 42).rgb) << distortion_name(d);
    EXPECT_NE(distort(photo(), d, 0.6, 42).rgb, distort(photo(), d, 0.6, 43).rgb) << distortion_name(d);
  }
  EXPECT_EQ(distort(photo(), Distortion::kBlur, 0.6, 1).rgb, distort(photo(), Distortion::kBlur, 0.6, 2).rgb);
}

TEST(Distort, JpegPictureIsTheDecodeOfTheWrittenFile) {
  const auto bytes = encode_jpeg(photo(), 0.7);
  const std::string path = ::testing::TempDir() + "/distort_q.jpg";
  FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
  // decode_image is the loader the trainer and the scorer use.
  const auto read = decode_image(path);
  const auto expected = distort(photo(), Distortion::kJpeg, 0.7);
  EXPECT_LT(rms_difference(read, expected), 1.0);  // libjpeg settings may differ by a level
}

TEST(Distort, NormalisedReferenceIsNeutralAtTheCommonContrast) {
  // A warm, flat version of the photograph: its own light and exposure must not survive.
  const auto warm = distort(distort(photo(), Distortion::kContrast, 0.5), Distortion::kColorShift, 0.8, 5);
  for (const Image* img : {&photo(), &warm}) {
    const auto ref = normalise_reference(*img, 50);
    EXPECT_NEAR(luma_std(ref), 50, 2.5);  // clipping at 0 and 255 takes a little
    const double grey = (mean_channel(ref, 0) + mean_channel(ref, 1) + mean_channel(ref, 2)) / 3;
    for (int c = 0; c < 3; ++c) EXPECT_NEAR(mean_channel(ref, c), grey, 2.0) << "channel " << c;
  }
  EXPECT_THROW(normalise_reference(Image()), Error);
}

TEST(Distort, MosIsFiveMinusFourTimesStrength) {
  EXPECT_DOUBLE_EQ(distortion_mos(0.0), 5.0);
  EXPECT_DOUBLE_EQ(distortion_mos(0.5), 3.0);
  EXPECT_DOUBLE_EQ(distortion_mos(1.0), 1.0);
  EXPECT_DOUBLE_EQ(distortion_mos(2.0), 1.0);  // clamped
}

TEST(Distort, NamesRoundTripAndUnknownOnesFail) {
  for (Distortion d : all_distortions()) EXPECT_EQ(parse_distortion(distortion_name(d), "t", "f"), d);
  EXPECT_THROW(parse_distortion("sharpen", "t", "f"), Error);
  EXPECT_EQ(all_distortions().size(), 6u);
}

TEST(Distort, ResizeShortSide) {
  const Image wide(300, 200);
  const auto r = resize_short_side(wide, 100);
  EXPECT_EQ(r.width, 150);
  EXPECT_EQ(r.height, 100);
  EXPECT_EQ(r.rgb.size(), 150u * 100u * 3u);
}
