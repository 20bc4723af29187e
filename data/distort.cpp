#include "data/distort.h"

#include <algorithm>
#include <cmath>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "qalign/base/error.h"

namespace qalign::data {

namespace {

// The Image's bytes seen as an RGB Mat (no copy; valid while `img` lives).
cv::Mat as_mat(const Image& img) {
  return cv::Mat(img.height, img.width, CV_8UC3, const_cast<uint8_t*>(img.rgb.data()));
}

Image from_mat(const cv::Mat& m) {
  Image out(m.cols, m.rows);
  m.copyTo(cv::Mat(m.rows, m.cols, CV_8UC3, out.rgb.data()));
  return out;
}

// Geometric from 95 to 2: blocking grows with the ratio of quality settings, not their difference
// (95 and 60 look alike; 8 and 4 do not).
int jpeg_quality(double s) { return static_cast<int>(std::lround(95 * std::pow(2.0 / 95, s))); }

std::vector<uint8_t> encode(const Image& img, const std::string& ext, const std::vector<int>& params) {
  cv::Mat bgr;
  cv::cvtColor(as_mat(img), bgr, cv::COLOR_RGB2BGR);  // the codecs expect OpenCV's BGR order
  std::vector<uint8_t> bytes;
  if (!cv::imencode(ext, bgr, bytes, params)) fail("distort", ext, "OpenCV could not encode the picture");
  return bytes;
}

// f(x) = mean + k (x - mean) per channel value, in float, rounded and clipped back to 8 bits.
Image affine_to(const Image& img, const cv::Scalar& offset, double gain) {
  cv::Mat out;
  as_mat(img).convertTo(out, CV_32FC3, gain);
  out += offset;
  cv::Mat u8;
  out.convertTo(u8, CV_8UC3);  // rounds and saturates
  return from_mat(u8);
}

}  // namespace

const std::vector<Distortion>& all_distortions() {
  static const std::vector<Distortion> all = {Distortion::kBlur,     Distortion::kNoise,      Distortion::kJpeg,
                                              Distortion::kContrast, Distortion::kColorShift, Distortion::kDownscale};
  return all;
}

std::string distortion_name(Distortion d) {
  switch (d) {
    case Distortion::kBlur:
      return "blur";
    case Distortion::kNoise:
      return "noise";
    case Distortion::kJpeg:
      return "jpeg";
    case Distortion::kContrast:
      return "contrast";
    case Distortion::kColorShift:
      return "color_shift";
    case Distortion::kDownscale:
      return "downscale";
  }
  return "";
}

Distortion parse_distortion(const std::string& word, const std::string& source, const std::string& field) {
  std::string known;
  for (Distortion d : all_distortions()) {
    if (word == distortion_name(d)) return d;
    known += (known.empty() ? "" : ", ") + distortion_name(d);
  }
  fail(source, field, "\"" + word + "\" is not a distortion (" + known + ")");
}

Image distort(const Image& img, Distortion d, double strength, uint64_t seed) {
  const double s = std::clamp(strength, 0.0, 1.0);
  if (img.width <= 0 || img.height <= 0) fail("distort", distortion_name(d), "empty picture");
  const cv::Mat src = as_mat(img);
  switch (d) {
    case Distortion::kBlur: {
      if (s == 0) return img;
      cv::Mat out;
      cv::GaussianBlur(src, out, cv::Size(0, 0), 4 * s, 4 * s, cv::BORDER_REFLECT_101);
      return from_mat(out);
    }
    case Distortion::kNoise: {
      cv::Mat noise(src.size(), CV_32FC3);
      cv::RNG rng(seed);
      rng.fill(noise, cv::RNG::NORMAL, 0.0, 40 * s);
      cv::Mat out;
      src.convertTo(out, CV_32FC3);
      out += noise;
      cv::Mat u8;
      out.convertTo(u8, CV_8UC3);
      return from_mat(u8);
    }
    case Distortion::kJpeg: {
      const auto bytes = encode_jpeg(img, s);
      cv::Mat bgr = cv::imdecode(bytes, cv::IMREAD_COLOR), rgb;
      cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
      return from_mat(rgb);
    }
    case Distortion::kContrast: {
      cv::Mat grey;
      cv::cvtColor(src, grey, cv::COLOR_RGB2GRAY);
      const double mean = cv::mean(grey)[0], gain = 1 - 0.85 * s;
      return affine_to(img, cv::Scalar::all(mean * (1 - gain)), gain);
    }
    case Distortion::kColorShift: {
      // A direction in the chroma plane (orthogonal to grey), so the cast leaves brightness alone.
      cv::RNG rng(seed);
      const double angle = rng.uniform(0.0, 2 * M_PI), r = 70 * s;
      const double a = r * std::cos(angle) / std::sqrt(2.0), b = r * std::sin(angle) / std::sqrt(6.0);
      return affine_to(img, cv::Scalar(a + b, -a + b, -2 * b), 1.0);
    }
    case Distortion::kDownscale: {
      if (s == 0) return img;
      const double f = 1 + 7 * s;
      const cv::Size small(std::max(1, static_cast<int>(std::lround(img.width / f))),
                           std::max(1, static_cast<int>(std::lround(img.height / f))));
      cv::Mat down, up;
      cv::resize(src, down, small, 0, 0, cv::INTER_AREA);
      cv::resize(down, up, src.size(), 0, 0, cv::INTER_LINEAR);
      return from_mat(up);
    }
  }
  return img;
}

double distortion_mos(double strength) { return 5 - 4 * std::clamp(strength, 0.0, 1.0); }

Image normalise_reference(const Image& img, double contrast) {
  if (img.width <= 0 || img.height <= 0) fail("normalise_reference", "", "empty picture");
  cv::Mat f;
  as_mat(img).convertTo(f, CV_32FC3);
  const cv::Scalar mean = cv::mean(f);
  const double grey = (mean[0] + mean[1] + mean[2]) / 3;
  std::vector<cv::Mat> ch;
  cv::split(f, ch);
  for (int c = 0; c < 3; ++c) ch[c] += grey - mean[c];
  cv::merge(ch, f);
  cv::Mat luma;
  cv::cvtColor(f, luma, cv::COLOR_RGB2GRAY);
  cv::Scalar m, sd;
  cv::meanStdDev(luma, m, sd);
  const double gain = sd[0] > 1e-6 ? contrast / sd[0] : 1.0;
  f = (f - cv::Scalar::all(m[0])) * gain + cv::Scalar::all(m[0]);
  cv::Mat u8;
  f.convertTo(u8, CV_8UC3);  // rounds and saturates
  return from_mat(u8);
}

Image resize_short_side(const Image& img, int short_side) {
  if (short_side < 1) fail("resize", "short_side", "must be at least 1");
  const double f = static_cast<double>(short_side) / std::min(img.width, img.height);
  const cv::Size size(std::max(1, static_cast<int>(std::lround(img.width * f))),
                      std::max(1, static_cast<int>(std::lround(img.height * f))));
  if (size.width == img.width && size.height == img.height) return img;
  cv::Mat out;
  cv::resize(as_mat(img), out, size, 0, 0, f < 1 ? cv::INTER_AREA : cv::INTER_CUBIC);
  return from_mat(out);
}

std::vector<uint8_t> encode_jpeg(const Image& img, double strength) {
  return encode(img, ".jpg", {cv::IMWRITE_JPEG_QUALITY, jpeg_quality(std::clamp(strength, 0.0, 1.0))});
}

std::vector<uint8_t> encode_png(const Image& img) { return encode(img, ".png", {cv::IMWRITE_PNG_COMPRESSION, 3}); }

}  // namespace qalign::data
