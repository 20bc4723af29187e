// qalign demo make-data | plot: the README's training demo. make-data turns the photographs two
// Debian packages ship into a synthetic-distortion quality set in the authors' formats (graded
// blur, noise, JPEG, contrast and colour cast by default; the MOS a fixed function of the
// strength), split by source photograph so the test pictures are never trained on, plus a
// tokenizer learned from the prompts. plot draws the training loss and held-out SRCC.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <random>

#include "data/dataset.h"
#include "data/dataset_sft.h"
#include "data/distort.h"
#include "data/image_decode.h"
#include "qalign/error.h"
#include "qalign/io/atomic_file.h"
#include "qalign/log.h"
#include "qalign/prompts.h"
#include "qalign/syllabus.h"
#include "qalign/tokenizer_train.h"
#include "tools/commands.h"

namespace qalign::tools {

namespace {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

// Natural colour photographs only: the packages' logos, charts, chessboards, digits, text,
// renders, paintings, pictures blurred on purpose, greyscale and near-duplicate views (aero3,
// the stereo partners) are left out.
const std::vector<std::pair<std::string, std::vector<std::string>>> kPhotoSources = {
    {"/usr/share/doc/opencv-doc/examples/data",
     {"aero1.jpg",    "aloeL.jpg",      "apple.jpg",        "baboon.jpg",       "board.jpg",
      "building.jpg", "butterfly.jpg",  "ela_original.jpg", "fruits.jpg",       "home.jpg",
      "left.jpg",     "leuvenA.jpg",    "messi5.jpg",       "orange.jpg",       "squirrel_cls.jpg",
      "stuff.jpg",    "chicky_512.png", "graf1.png",        "rubberwhale1.png", "smarties.png"}},
    {"/usr/lib/python3/dist-packages/skimage/data",
     {"astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png"}},
};

struct MakeDataArgs {
  std::string out;
  uint64_t seed = 0;
  int per_image = 48, test_per_image = 24, size = 224, scene = 0;
  std::vector<std::string> distortions = {"blur", "noise", "jpeg", "contrast", "color_shift"};
  double test_fraction = 0.25;
  int64_t vocab_size = 512;
};

struct PlotArgs {
  std::string metrics, out, dataset, metric = "srcc";
};

// Uniform in [0, 1) from the top 53 bits: the same numbers on every standard library.
double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

// The demo's labels carry three decimals, so "<image>-><mos>" ids read cleanly.
double round3(double v) { return std::round(v * 1000) / 1000; }

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!f) fail(path, "", "cannot write");
}

struct Variant {
  std::string image;  // relative to the data folder
  std::string source;
  data::Distortion distortion;
  double strength, mos;
};

// A size x size window of `img` at a random place.
data::Image random_crop(const data::Image& img, int size, std::mt19937_64& rng) {
  const int x0 = static_cast<int>(rng() % static_cast<uint64_t>(img.width - size + 1));
  const int y0 = static_cast<int>(rng() % static_cast<uint64_t>(img.height - size + 1));
  data::Image out(size, size);
  for (int y = 0; y < size; ++y) std::copy_n(img.pixel(x0, y0 + y), static_cast<size_t>(size) * 3, out.pixel(0, y));
  return out;
}

// Mean squared difference of neighbouring grey levels: how much fine detail a picture has.
double detail(const data::Image& img) {
  double e = 0;
  const auto grey = [&](int x, int y) {
    const uint8_t* p = img.pixel(x, y);
    return 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
  };
  for (int y = 0; y + 1 < img.height; ++y)
    for (int x = 0; x + 1 < img.width; ++x)
      e += std::pow(grey(x + 1, y) - grey(x, y), 2) + std::pow(grey(x, y + 1) - grey(x, y), 2);
  return e;
}

// The most detailed of a few random windows: on a patch of clear sky, blur, blocking and lost
// resolution leave nothing to see, and a label the picture cannot show only teaches guessing.
data::Image detailed_crop(const data::Image& img, int size, std::mt19937_64& rng) {
  data::Image best = random_crop(img, size, rng);
  double best_detail = detail(best);
  for (int k = 1; k < 4; ++k) {
    auto c = random_crop(img, size, rng);
    if (const double e = detail(c); e > best_detail) best = std::move(c), best_detail = e;
  }
  return best;
}

// K variants of one photograph: the types in turn, each type's strengths spread over [0, 1] by
// stratified sampling, so every photograph covers the whole range of every type. Each variant is
// its own square crop, as large as the model's input: the model sees the distortion pixel for
// pixel (a resize would smooth noise and blocking away) and many views of each scene. Each crop
// is normalised (normalise_reference) before the damage, so a flat or tinted photograph does not
// read as contrast or colour-cast damage it never had.
std::vector<Variant> write_variants(const data::Image& scene, const std::string& stem, int count, int size,
                                    const std::vector<data::Distortion>& types, const fs::path& images_dir,
                                    std::mt19937_64& rng) {
  std::vector<Variant> out;
  for (int k = 0; k < count; ++k) {
    const int t = k % static_cast<int>(types.size());
    const int per_type = (count - t + static_cast<int>(types.size()) - 1) / static_cast<int>(types.size());
    const int j = k / static_cast<int>(types.size());
    const double s = round3((j + uniform01(rng)) / per_type);
    const uint64_t noise_seed = rng();
    const auto photo = data::normalise_reference(detailed_crop(scene, size, rng));
    const auto d = types[t];
    char name[256];
    std::snprintf(name, sizeof name, "%s_%03d_%s.%s", stem.c_str(), k, data::distortion_name(d).c_str(),
                  d == data::Distortion::kJpeg ? "jpg" : "png");
    // The JPEG type is written as the compressed file itself: the picture is exactly its decode.
    write_bytes((images_dir / name).string(), d == data::Distortion::kJpeg
                                                  ? data::encode_jpeg(photo, s)
                                                  : data::encode_png(data::distort(photo, d, s, noise_seed)));
    out.push_back({"images/" + std::string(name), stem, d, s, round3(data::distortion_mos(s))});
  }
  return out;
}

data::ScoredRecord scored_record(const Variant& v) {
  data::ScoredRecord r;
  r.image = v.image;
  r.mos = v.mos;
  r.mos_text = data::python_float_text(v.mos);
  return r;
}

int run_make_data(const MakeDataArgs& a) {
  if (a.per_image < 1 || a.test_per_image < 1) fail("--per-image", "", "must be at least 1");
  if (a.size < 32) fail("--size", "", "must be at least 32");
  if (a.scene != 0 && a.scene < a.size) fail("--scene", "", "must be at least --size");
  std::vector<data::Distortion> types;
  for (const auto& word : a.distortions) types.push_back(data::parse_distortion(word, "--distortions", ""));
  // By default scaled so the crops keep most of the scene (short side 8/7 of the crop: 256 for 224).
  const int scene_side = a.scene > 0 ? a.scene : (a.size * 8 + 6) / 7;
  std::vector<std::pair<std::string, std::string>> photos;  // (stem, path)
  std::string searched;
  for (const auto& [dir, names] : kPhotoSources) {
    searched += (searched.empty() ? "" : ", ") + dir;
    for (const auto& n : names)
      if (fs::exists(fs::path(dir) / n)) photos.emplace_back(fs::path(n).stem().string(), (fs::path(dir) / n).string());
  }
  if (photos.size() < 4)
    fail(searched, "",
         "found " + std::to_string(photos.size()) +
             " of the demo's photographs; install opencv-doc (and python3-skimage for more)");

  // Fisher–Yates with our own draws, so the split is the same everywhere for a seed.
  std::mt19937_64 rng(a.seed);
  for (size_t i = photos.size() - 1; i > 0; --i) std::swap(photos[i], photos[rng() % (i + 1)]);
  const size_t n_test =
      std::clamp<size_t>(static_cast<size_t>(std::lround(photos.size() * a.test_fraction)), 1, photos.size() - 1);

  const fs::path out(a.out), images = out / "images";
  std::error_code ec;
  fs::create_directories(images, ec);
  if (ec) fail(images.string(), "", "cannot create: " + ec.message());
  std::vector<Variant> train, test;
  ordered_json manifest = {{"seed", a.seed},
                           {"size", a.size},
                           {"train_photos", ordered_json::array()},
                           {"test_photos", ordered_json::array()}};
  for (size_t i = 0; i < photos.size(); ++i) {
    const bool is_test = i < n_test;
    const auto scene = data::resize_short_side(data::decode_image(photos[i].second), scene_side);
    auto v =
        write_variants(scene, photos[i].first, is_test ? a.test_per_image : a.per_image, a.size, types, images, rng);
    auto& split = is_test ? test : train;
    split.insert(split.end(), v.begin(), v.end());
    manifest[is_test ? "test_photos" : "train_photos"].push_back(photos[i].second);
    log::info(is_test ? "test  " : "train ", photos[i].first, ": ", v.size(), " variants");
  }

  // Labels through the syllabus on the ratings' own scale [1, 5]; 5 itself (strength 0) is kept
  // as excellent rather than dropped.
  const OneHotLabeler labeler(Syllabus({1.0, 5.0}, OutOfRange::kClamp, "demo"));
  std::vector<data::ScoredRecord> train_records;
  for (const auto& v : train) train_records.push_back(scored_record(v));
  data::SftOptions sft;
  sft.seed = a.seed;
  const auto sft_out = data::make_sft_records(train_records, labeler, sft, "demo train set");
  io::write_file_atomic((out / "train.json").string(), sft_out.records.dump(1) + "\n");
  // The ablation's other answer (experiments/ablation-levels-vs-scores): the same conversations
  // with the MOS written as a number in place of the level word.
  auto numbers = sft_out.records;
  for (auto& rec : numbers) {
    const double mos = std::stod(rec["id"].get<std::string>().substr(rec["id"].get<std::string>().rfind("->") + 2));
    char text[16];
    std::snprintf(text, sizeof text, "%.2f", mos);
    rec["conversations"][1]["value"] = training_answer(Task::kQuality, Media::kImage, text);
  }
  io::write_file_atomic((out / "train_numbers.json").string(), numbers.dump(1) + "\n");

  ordered_json test_json = ordered_json::array();
  for (const auto& v : test) test_json.push_back({{"image", v.image}, {"gt_score", v.mos}});
  io::write_file_atomic((out / "test.json").string(), test_json.dump(1) + "\n");

  ordered_json items = ordered_json::array();
  for (const auto* set : {&train, &test})
    for (const auto& v : *set)
      items.push_back({{"image", v.image},
                       {"source", v.source},
                       {"split", set == &train ? "train" : "test"},
                       {"distortion", data::distortion_name(v.distortion)},
                       {"strength", v.strength},
                       {"mos", v.mos}});
  manifest["items"] = items;
  io::write_file_atomic((out / "manifest.json").string(), manifest.dump(1) + "\n");

  const int64_t vocab = train_prompt_tokenizer((out / "tokenizer").string(), a.vocab_size);
  log::info("wrote ", train.size(), " training and ", test.size(), " test pictures from ", photos.size() - n_test,
            " + ", n_test, " photographs, and a ", vocab, "-piece tokenizer, to ", out.string());
  return 0;
}

// ---- plot ------------------------------------------------------------------------------------

struct Series {
  std::vector<double> x, y;
};

// The training loss and one evaluation metric of a run's metrics.jsonl: loss lines carry "loss",
// evaluation lines "eval_<dataset>_<metric>" (the first dataset found unless one is named).
std::pair<Series, Series> read_metrics(const std::string& path, std::string dataset, const std::string& metric) {
  std::ifstream in(path);
  if (!in) fail(path, "", "cannot open");
  Series loss, eval;
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

std::string tick_label(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, std::abs(v) >= 100 ? "%.0f" : std::abs(v) >= 10 ? "%.1f" : "%.2f", v);
  return buf;
}

int run_plot(const PlotArgs& a) {
  const auto [loss, eval] = read_metrics(a.metrics, a.dataset, a.metric);
  const double x_max = std::max(1.0, *std::max_element(loss.x.begin(), loss.x.end()));

  const int W = 960, H = 540, left = 80, right = 80, top = 56, bottom = 64;
  const int pw = W - left - right, ph = H - top - bottom;
  cv::Mat img(H, W, CV_8UC3, cv::Scalar(255, 255, 255));
  const double loss_max = *std::max_element(loss.y.begin(), loss.y.end()) * 1.05;
  double eval_lo = 0;
  for (double v : eval.y) eval_lo = std::min(eval_lo, std::floor(v * 10) / 10);
  auto px = [&](double x) { return left + static_cast<int>(std::lround(x / x_max * pw)); };
  auto py = [&](double y, double lo, double hi) {
    return top + ph - static_cast<int>(std::lround((y - lo) / (hi - lo) * ph));
  };

  const cv::Scalar grid(225, 225, 225), ink(40, 40, 40), loss_colour(180, 90, 30), eval_colour(30, 120, 230);
  const int font = cv::FONT_HERSHEY_SIMPLEX;
  for (int i = 0; i <= 5; ++i) {
    const double fx = x_max * i / 5, fl = loss_max * i / 5, fe = eval_lo + (1 - eval_lo) * i / 5;
    cv::line(img, {px(fx), top}, {px(fx), top + ph}, grid);
    cv::line(img, {left, py(fl, 0, loss_max)}, {left + pw, py(fl, 0, loss_max)}, grid);
    cv::putText(img, tick_label(fx), {px(fx) - 14, top + ph + 20}, font, 0.45, ink, 1, cv::LINE_AA);
    cv::putText(img, tick_label(fl), {left - 52, py(fl, 0, loss_max) + 5}, font, 0.45, loss_colour, 1, cv::LINE_AA);
    if (!eval.x.empty())
      cv::putText(img, tick_label(fe), {left + pw + 8, py(fe, eval_lo, 1) + 5}, font, 0.45, eval_colour, 1,
                  cv::LINE_AA);
  }
  cv::rectangle(img, {left, top}, {left + pw, top + ph}, ink);
  std::vector<cv::Point> line;
  for (size_t i = 0; i < loss.x.size(); ++i) line.emplace_back(px(loss.x[i]), py(loss.y[i], 0, loss_max));
  cv::polylines(img, line, false, loss_colour, 2, cv::LINE_AA);
  line.clear();
  for (size_t i = 0; i < eval.x.size(); ++i) {
    line.emplace_back(px(eval.x[i]), py(eval.y[i], eval_lo, 1));
    cv::circle(img, line.back(), 4, eval_colour, cv::FILLED, cv::LINE_AA);
  }
  if (line.size() > 1) cv::polylines(img, line, false, eval_colour, 2, cv::LINE_AA);

  std::string upper = a.metric;
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
  if (!cv::imwrite(a.out, img)) fail(a.out, "", "OpenCV could not write the PNG");
  log::info("wrote ", a.out, " (", loss.x.size(), " logged steps, ", eval.x.size(), " evaluations)");
  return 0;
}

}  // namespace

Command add_demo(CLI::App& app) {
  auto* cmd = app.add_subcommand("demo", "The training demo: a synthetic-distortion set from real photographs, plots");
  cmd->require_subcommand(1);

  auto m = std::make_shared<MakeDataArgs>();
  auto* make =
      cmd->add_subcommand("make-data", "Distort the photographs Debian ships into train/test sets + tokenizer");
  make->add_option("--out", m->out, "Output folder (images/, train.json, test.json, tokenizer/)")->required();
  make->add_option("--seed", m->seed, "Split, strengths and noise")->capture_default_str();
  make->add_option("--per-image", m->per_image, "Distorted variants per training photograph")->capture_default_str();
  make->add_option("--test-per-image", m->test_per_image, "Distorted variants per test photograph")
      ->capture_default_str();
  make->add_option("--test-fraction", m->test_fraction, "Share of the photographs held out for testing")
      ->capture_default_str();
  make->add_option("--size", m->size, "Side of the square pictures written: the model's image_size")
      ->capture_default_str();
  make->add_option("--scene", m->scene, "Short side the photographs are scaled to before cropping (0: 8/7 of --size)")
      ->capture_default_str();
  make->add_option("--distortions", m->distortions,
                   "Comma-separated types: blur, noise, jpeg, contrast, color_shift, downscale")
      ->delimiter(',')
      ->capture_default_str();
  make->add_option("--vocab-size", m->vocab_size, "Pieces of the prompt tokenizer")->capture_default_str();

  auto p = std::make_shared<PlotArgs>();
  auto* plot = cmd->add_subcommand("plot", "PNG plot of the training loss and evaluation SRCC");
  plot->add_option("--metrics", p->metrics, "The run's output_dir/metrics.jsonl (loss and eval_steps evaluations)")
      ->required();
  plot->add_option("--dataset", p->dataset, "Evaluation dataset to plot (default: the first in the file)");
  plot->add_option("--metric", p->metric, "srcc | plcc | krcc")->capture_default_str();
  plot->add_option("--out", p->out, "PNG file to write")->required();

  return {cmd, [make, plot, m, p]() { return make->parsed() ? run_make_data(*m) : run_plot(*p); }};
}

}  // namespace qalign::tools
