// The training plot (data/training_plot.h): a run's metrics.jsonl read and drawn with OpenCV.
#include "data/training_plot.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "qalign/base/error.h"
#include "qalign/base/log.h"

namespace qalign::data {

std::pair<MetricSeries, MetricSeries> read_metrics(const std::string& path, std::string dataset,
                                                   const std::string& metric) {
  std::ifstream in(path);
  if (!in) fail(path, "", "cannot open");
  MetricSeries loss, eval;
  const std::string suffix = "_" + metric;
  size_t line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("step") || !j["step"].is_number())
      fail(path, "line " + std::to_string(line_no), "not a metrics.jsonl object with a step");
    const double step = j["step"].get<double>();
    if (j.contains("loss") && j["loss"].is_number()) {
      loss.x.push_back(step);
      loss.y.push_back(j["loss"].get<double>());
    }
    for (const auto& [key, value] : j.items()) {
      if (key.rfind("eval_", 0) != 0 || key.size() <= 5 + suffix.size() ||
          key.compare(key.size() - suffix.size(), suffix.size(), suffix) != 0)
        continue;
      const std::string name = key.substr(5, key.size() - 5 - suffix.size());
      if (dataset.empty()) dataset = name;
      if (name == dataset && value.is_number()) {
        eval.x.push_back(step);
        eval.y.push_back(value.get<double>());
      }
    }
  }
  if (loss.x.empty()) fail(path, "", "no logged steps");
  return {loss, eval};
}

namespace {

std::string printf_text(const char* format, double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

}  // namespace

void plot_training(const std::string& metrics, const std::string& out, const std::string& dataset,
                   const std::string& metric) {
  const auto [loss, eval] = read_metrics(metrics, dataset, metric);
  const double x_max = std::max(1.0, *std::max_element(loss.x.begin(), loss.x.end()));

  const int W = 960, H = 540, left = 80, right = 80, top = 56, bottom = 64;
  const int pw = W - left - right, ph = H - top - bottom;
  cv::Mat img(H, W, CV_8UC3, cv::Scalar(255, 255, 255));
  // The loss on a log axis, whole decades: it falls two orders in the first steps, and a linear
  // axis flattens everything after them.
  double loss_min = HUGE_VAL, loss_max = 0;
  for (double v : loss.y)
    if (v > 0) loss_min = std::min(loss_min, v), loss_max = std::max(loss_max, v);
  if (loss_max == 0) loss_min = loss_max = 1;
  const double log_lo = std::floor(std::log10(loss_min)),
               log_hi = std::max(log_lo + 1, std::ceil(std::log10(loss_max)));
  double eval_lo = 0;
  for (double v : eval.y) eval_lo = std::min(eval_lo, std::floor(v * 10) / 10);
  auto px = [&](double x) { return left + static_cast<int>(std::lround(x / x_max * pw)); };
  auto py = [&](double y, double lo, double hi) {
    return top + ph - static_cast<int>(std::lround((y - lo) / (hi - lo) * ph));
  };
  auto py_loss = [&](double y) {
    return py(y > 0 ? std::clamp(std::log10(y), log_lo, log_hi) : log_lo, log_lo, log_hi);
  };

  const cv::Scalar grid(225, 225, 225), ink(40, 40, 40), loss_colour(180, 90, 30), eval_colour(30, 120, 230);
  const int font = cv::FONT_HERSHEY_SIMPLEX;
  for (int i = 0; i <= 5; ++i) {
    const double fx = x_max * i / 5, fe = eval_lo + (1 - eval_lo) * i / 5;
    cv::line(img, {px(fx), top}, {px(fx), top + ph}, grid);
    cv::putText(img, printf_text("%.0f", fx), {px(fx) - 14, top + ph + 20}, font, 0.45, ink, 1, cv::LINE_AA);
    if (!eval.x.empty())
      cv::putText(img, printf_text("%.2f", fe), {left + pw + 8, py(fe, eval_lo, 1) + 5}, font, 0.45, eval_colour, 1,
                  cv::LINE_AA);
  }
  // Grid at 1, 2 and 5 of each decade; labels on those that leave room for them.
  const bool crowded = log_hi - log_lo > 3;
  for (double d = log_lo; d < log_hi + 0.5; ++d)
    for (double m : {1.0, 2.0, 5.0}) {
      const double v = m * std::pow(10, d);
      if (std::log10(v) > log_hi + 1e-9) break;
      cv::line(img, {left, py_loss(v)}, {left + pw, py_loss(v)}, grid);
      if (m == 1 || !crowded)
        cv::putText(img, printf_text("%g", v), {left - 52, py_loss(v) + 5}, font, 0.45, loss_colour, 1, cv::LINE_AA);
    }
  cv::rectangle(img, {left, top}, {left + pw, top + ph}, ink);
  std::vector<cv::Point> line;
  for (size_t i = 0; i < loss.x.size(); ++i) line.emplace_back(px(loss.x[i]), py_loss(loss.y[i]));
  cv::polylines(img, line, false, loss_colour, 2, cv::LINE_AA);
  line.clear();
  for (size_t i = 0; i < eval.x.size(); ++i) {
    line.emplace_back(px(eval.x[i]), py(eval.y[i], eval_lo, 1));
    cv::circle(img, line.back(), 4, eval_colour, cv::FILLED, cv::LINE_AA);
  }
  if (line.size() > 1) cv::polylines(img, line, false, eval_colour, 2, cv::LINE_AA);

  std::string upper = metric;
  std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
  cv::putText(img, "Training loss and held-out " + upper, {left, 34}, font, 0.7, ink, 2, cv::LINE_AA);
  cv::putText(img, "step", {left + pw / 2 - 16, H - 18}, font, 0.55, ink, 1, cv::LINE_AA);
  cv::putText(img, "loss", {12, top - 12}, font, 0.55, loss_colour, 1, cv::LINE_AA);
  if (!eval.x.empty()) {
    cv::putText(img, upper, {left + pw + 8, top - 12}, font, 0.55, eval_colour, 1, cv::LINE_AA);
    char last[64];
    std::snprintf(last, sizeof last, "final %s %.3f", upper.c_str(), eval.y.back());
    cv::putText(img, last, {left + pw - 190, top + 24}, font, 0.55, eval_colour, 1, cv::LINE_AA);
  }
  if (!cv::imwrite(out, img)) fail(out, "", "OpenCV could not write the PNG");
  log::info("wrote ", out, " (", loss.x.size(), " logged steps, ", eval.x.size(), " evaluations)");
}

}  // namespace qalign::data
