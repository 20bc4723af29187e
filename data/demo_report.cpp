#include "data/demo_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <vector>

#include "data/preprocess.h"
#include "qalign/base/error.h"
#include "qalign/base/json_file.h"
#include "qalign/io/weights.h"
#include "qalign/metrics.h"
#include "qalign/scorer.h"

namespace qalign::data {

namespace {

namespace fs = std::filesystem;

struct Scored {
  std::string image, distortion;
  double mos = 0, score = 0;
  int level = 0;
};

std::string fixed(double v, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

// One tile: the picture enlarged (nearest neighbour, so the damage stays visible) over two lines
// of caption.
cv::Mat tile(const fs::path& data, const Scored& s, int side) {
  const int caption = 44;
  cv::Mat out(side + caption, side, CV_8UC3, cv::Scalar(255, 255, 255));
  const cv::Mat picture = cv::imread((data / s.image).string(), cv::IMREAD_COLOR);
  if (picture.empty()) fail((data / s.image).string(), "", "OpenCV could not read the held-out picture");
  cv::Mat big;
  cv::resize(picture, big, {side, side}, 0, 0, cv::INTER_NEAREST);
  big.copyTo(out(cv::Rect(0, 0, side, side)));
  const cv::Scalar ink(40, 40, 40);
  cv::putText(out, std::string(kLevelWords[s.level]) + " " + fixed(s.score, 2), {4, side + 18},
              cv::FONT_HERSHEY_SIMPLEX, 0.5, ink, 1, cv::LINE_AA);
  cv::putText(out, "MOS " + fixed(s.mos, 2) + " " + s.distortion, {4, side + 38}, cv::FONT_HERSHEY_SIMPLEX, 0.42,
              cv::Scalar(120, 120, 120), 1, cv::LINE_AA);
  return out;
}

void write_sheet(const std::string& path, const fs::path& data, const std::vector<Scored>& best,
                 const std::vector<Scored>& worst) {
  const int side = 192, gap = 8, label = 28;
  const int n = static_cast<int>(std::max(best.size(), worst.size()));
  const int row_h = side + 44;
  cv::Mat sheet(2 * (label + row_h) + gap, n * (side + gap) + gap, CV_8UC3, cv::Scalar(255, 255, 255));
  int y = 0;
  for (const auto& [title, row] :
       {std::pair{"best-rated held-out pictures", &best}, std::pair{"worst-rated held-out pictures", &worst}}) {
    cv::putText(sheet, title, {gap, y + 20}, cv::FONT_HERSHEY_SIMPLEX, 0.6, cv::Scalar(40, 40, 40), 1, cv::LINE_AA);
    for (size_t k = 0; k < row->size(); ++k)
      tile(data, (*row)[k], side)
          .copyTo(sheet(cv::Rect(gap + static_cast<int>(k) * (side + gap), y + label, side, row_h)));
    y += label + row_h;
  }
  if (!cv::imwrite(path, sheet)) fail(path, "", "OpenCV could not write the PNG");
}

}  // namespace

std::string demo_report(const DemoReportOptions& o) {
  const fs::path data(o.data);
  const std::string manifest_path = (data / "manifest.json").string();
  const auto manifest = io::read_json_file(manifest_path);
  std::vector<Scored> items;
  try {
    for (const auto& it : manifest.at("items"))
      if (it.at("split") == "test")
        items.push_back(
            {it.at("image").get<std::string>(), it.at("distortion").get<std::string>(), it.at("mos").get<double>()});
  } catch (const nlohmann::json::exception& e) {
    fail(manifest_path, "items", e.what());
  }
  if (items.size() < 2) fail(manifest_path, "items", "fewer than two held-out pictures");

  Scorer scorer(io::load_pretrained(o.model), Tokenizer(o.model));
  for (size_t at = 0; at < items.size(); at += static_cast<size_t>(o.batch_size)) {
    const size_t end = std::min(items.size(), at + static_cast<size_t>(o.batch_size));
    std::vector<torch::Tensor> pixels;
    for (size_t i = at; i < end; ++i)
      pixels.push_back(load_image_tensor((data / items[i].image).string(), scorer.image_size()).unsqueeze(0));
    const auto s = scorer.score(pixels, Task::kQuality, Media::kImage);
    for (size_t i = at; i < end; ++i) {
      items[i].score = s.score5[static_cast<int64_t>(i - at)].item<double>();
      items[i].level = static_cast<int>(s.level[static_cast<int64_t>(i - at)].item<int64_t>());
    }
  }

  std::map<std::string, std::pair<std::vector<double>, std::vector<double>>> by_type;
  for (const auto& it : items) {
    for (const auto& key : {it.distortion, std::string("all")}) {
      by_type[key].first.push_back(it.score);
      by_type[key].second.push_back(it.mos);
    }
  }
  std::string table = "| distortion | pictures | SRCC |\n|---|---:|---:|\n";
  auto row = [&](const std::string& key) {
    const auto& [pred, gt] = by_type.at(key);
    const double srcc = pred.size() >= 2 ? metrics::spearman(pred, gt) : std::nan("");
    table += "| " + key + " | " + std::to_string(pred.size()) + " | " +
             (std::isfinite(srcc) ? fixed(srcc, 3) : std::string("undefined")) + " |\n";
  };
  for (const auto& [key, _] : by_type)
    if (key != "all") row(key);
  row("all");

  auto sorted = items;
  std::stable_sort(sorted.begin(), sorted.end(), [](const Scored& a, const Scored& b) { return a.score > b.score; });
  const size_t n = std::min<size_t>(static_cast<size_t>(o.count), sorted.size() / 2);
  write_sheet(o.sheet, data, {sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(n)},
              {sorted.rbegin(), sorted.rbegin() + static_cast<std::ptrdiff_t>(n)});
  return table;
}

}  // namespace qalign::data
