#include "data/pil_resize.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace qalign::data {

namespace {

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
uint8_t clip8(int64_t acc) {
  return static_cast<uint8_t>(std::clamp<int64_t>(acc >> kPrecisionBits, 0, 255));
}

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

}  // namespace

Image pil_resize_bicubic(const Image& in, int out_width, int out_height) {
  if (in.width <= 0 || in.height <= 0 || out_width <= 0 || out_height <= 0)
    throw std::invalid_argument("pil_resize_bicubic: sizes must be positive");
  // Pillow skips the pass along an axis whose size does not change; horizontal runs first.
  if (out_width == in.width)
    return out_height == in.height ? in : vertical_pass(in, out_height, make_taps(in.height, out_height));
  Image wide = horizontal_pass(in, out_width, make_taps(in.width, out_width));
  if (out_height == in.height) return wide;
  return vertical_pass(wide, out_height, make_taps(in.height, out_height));
}

}  // namespace qalign::data
