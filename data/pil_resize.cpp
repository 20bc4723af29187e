#include "data/pil_resize.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

namespace qalign::data {

namespace {

// Pillow keeps 8 bits for the sample and 2 for headroom in a 32-bit accumulator.
constexpr int kPrecisionBits = 32 - 8 - 2;
constexpr int64_t kHalf = int64_t{1} << (kPrecisionBits - 1);
constexpr double kBicubicSupport = 2.0;

// Keys' cubic with a = -0.5, as Pillow's bicubic_filter.
double bicubic(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// For each output position along one axis, Pillow's fixed-point weights split at the picture's
// edges: the taps on the picture, [lo, hi) in canvas coordinates, are kept; those on the padding
// are only summed, because the padding is one colour and so contributes colour * that sum, the
// same integer Pillow's tap-by-tap accumulation reaches. `total` sums every tap.
struct Taps {
  std::vector<int> lo, hi;
  std::vector<size_t> offset;  // into weights, for the taps [lo, hi)
  std::vector<int64_t> pad_sum, total;
  std::vector<int32_t> weights;
  int32_t weight(int pos, int x) const { return weights[offset[pos] + (x - lo[pos])]; }
};

// Pillow's precompute_coeffs for the box [0, in_size) followed by normalize_coeffs_8bpc, the
// picture covering [begin, end) of it. The box edges are floats in Pillow; whole-image sizes are
// exact in float, so double is equivalent. Weights are computed twice rather than stored, so a
// 40000-wide padding costs no memory.
Taps make_taps(int in_size, int out_size, int begin, int end) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);  // widen the kernel when shrinking: antialias
  const double support = kBicubicSupport * filterscale;
  const double ss = 1.0 / filterscale;
  Taps t;
  t.lo.resize(out_size);
  t.hi.resize(out_size);
  t.offset.resize(out_size);
  t.pad_sum.resize(out_size);
  t.total.resize(out_size);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    // Truncating casts, as in C; the clamps make their rounding direction irrelevant below 0.
    const int xmin = std::max(static_cast<int>(center - support + 0.5), 0);
    const int xmax = std::min(static_cast<int>(center + support + 0.5), in_size) - xmin;
    double ww = 0.0;  // summed in Pillow's order
    for (int x = 0; x < xmax; ++x) ww += bicubic((x + xmin - center + 0.5) * ss);
    t.lo[xx] = std::clamp(xmin, begin, end);
    t.hi[xx] = std::clamp(xmin + xmax, t.lo[xx], end);
    t.offset[xx] = t.weights.size();
    for (int x = 0; x < xmax; ++x) {
      const double k = bicubic((x + xmin - center + 0.5) * ss);
      const double v = ww != 0.0 ? k / ww : k;
      const double scaled = v * (1 << kPrecisionBits);
      const auto w = static_cast<int32_t>(v < 0 ? -0.5 + scaled : 0.5 + scaled);
      t.total[xx] += w;
      if (x + xmin >= t.lo[xx] && x + xmin < t.hi[xx]) {
        t.weights.push_back(w);
      } else {
        t.pad_sum[xx] += w;
      }
    }
  }
  return t;
}

// Rounds away the fraction (the accumulator starts at one half) and clamps to a byte.
uint8_t clip8(int64_t acc) { return static_cast<uint8_t>(std::clamp<int64_t>(acc >> kPrecisionBits, 0, 255)); }

// The canvas after the horizontal pass (or without it, when the width does not change), one row
// at a time: every padding row is the same row, the picture's rows are made on request.
class Band {
 public:
  Band(const Image& in, const Canvas& canvas, int out_width)
      : in_(in), canvas_(canvas), width_(out_width), row_(static_cast<size_t>(out_width) * 3), pad_row_(row_.size()) {
    if (out_width != canvas.width) taps_ = make_taps(canvas.width, out_width, canvas.left, canvas.left + in.width);
    fill(nullptr, pad_row_.data());
  }
  int width() const { return width_; }
  const std::vector<uint8_t>& pad_row() const { return pad_row_; }
  bool on_picture(int y) const { return y >= canvas_.top && y < canvas_.top + in_.height; }
  // Canvas row y; valid until the next call.
  const uint8_t* row(int y) {
    if (!on_picture(y)) return pad_row_.data();
    fill(in_.pixel(0, y - canvas_.top), row_.data());
    return row_.data();
  }

 private:
  // One canvas row into dst; src is the picture's row, or null for a padding row.
  void fill(const uint8_t* src, uint8_t* dst) const {
    const auto& bg = canvas_.background;
    if (width_ == canvas_.width) {
      for (int x = 0; x < width_; ++x) {
        const bool picture = src && x >= canvas_.left && x < canvas_.left + in_.width;
        for (int c = 0; c < 3; ++c) dst[x * 3 + c] = picture ? src[(x - canvas_.left) * 3 + c] : bg[c];
      }
      return;
    }
    for (int xx = 0; xx < width_; ++xx) {
      for (int c = 0; c < 3; ++c) {
        int64_t acc = kHalf + int64_t{bg[c]} * (src ? taps_.pad_sum[xx] : taps_.total[xx]);
        if (src)
          for (int x = taps_.lo[xx]; x < taps_.hi[xx]; ++x)
            acc += int64_t{src[(x - canvas_.left) * 3 + c]} * taps_.weight(xx, x);
        dst[xx * 3 + c] = clip8(acc);
      }
    }
  }

  const Image& in_;
  const Canvas& canvas_;
  int width_;
  Taps taps_;
  std::vector<uint8_t> row_, pad_row_;
};

// Each picture row is made once and added to every output row whose taps reach it; the padding
// rows enter as the padding row times their summed weight.
Image vertical_pass(Band& band, const Canvas& canvas, int picture_height, int out_height) {
  const Taps t = make_taps(canvas.height, out_height, canvas.top, canvas.top + picture_height);
  const size_t row = static_cast<size_t>(band.width()) * 3;
  std::vector<int64_t> acc(static_cast<size_t>(out_height) * row);
  const std::vector<uint8_t>& pad = band.pad_row();
  for (int yy = 0; yy < out_height; ++yy)
    for (size_t i = 0; i < row; ++i) acc[yy * row + i] = kHalf + int64_t{pad[i]} * t.pad_sum[yy];
  int from = 0;  // the first output row whose taps reach the current picture row; lo and hi never decrease
  for (int y = canvas.top; y < canvas.top + picture_height; ++y) {
    while (from < out_height && t.hi[from] <= y) ++from;
    if (from == out_height || t.lo[from] > y) continue;
    const uint8_t* src = band.row(y);
    for (int yy = from; yy < out_height && t.lo[yy] <= y; ++yy) {  // hi[yy] >= hi[from] > y
      const int64_t w = t.weight(yy, y);
      int64_t* a = &acc[yy * row];
      for (size_t i = 0; i < row; ++i) a[i] += src[i] * w;
    }
  }
  Image out(band.width(), out_height);
  for (size_t i = 0; i < acc.size(); ++i) out.rgb[i] = clip8(acc[i]);
  return out;
}

}  // namespace

Image pil_resize_bicubic(const Image& in, int out_width, int out_height) {
  return pil_resize_bicubic(in, Canvas{in.width, in.height, 0, 0, {}}, out_width, out_height);
}

Image pil_resize_bicubic(const Image& in, const Canvas& canvas, int out_width, int out_height) {
  if (in.width <= 0 || in.height <= 0 || out_width <= 0 || out_height <= 0)
    throw std::invalid_argument("pil_resize_bicubic: sizes must be positive");
  if (canvas.left < 0 || canvas.top < 0 || canvas.left > canvas.width - in.width ||
      canvas.top > canvas.height - in.height)
    throw std::invalid_argument("pil_resize_bicubic: the picture must lie on the canvas");
  // Pillow skips the pass along an axis whose size does not change; horizontal runs first.
  Band band(in, canvas, out_width);
  if (out_height != canvas.height) return vertical_pass(band, canvas, in.height, out_height);
  Image out(out_width, out_height);
  const size_t row = static_cast<size_t>(out_width) * 3;
  for (int y = 0; y < out_height; ++y) std::copy_n(band.row(y), row, out.pixel(0, y));
  return out;
}

}  // namespace qalign::data
