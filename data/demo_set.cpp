// The demo set (data/demo_set.h): photographs chosen, cropped where there is detail, damaged in
// graded steps and written with their labels in the authors' formats.
#include "data/demo_set.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <utility>

#include "data/dataset_sft.h"
#include "data/demo_photographs.h"
#include "data/distort.h"
#include "data/image_decode.h"
#include "data/qt_resource.h"
#include "qalign/base/atomic_file.h"
#include "qalign/base/error.h"
#include "qalign/base/log.h"
#include "qalign/label_files.h"
#include "qalign/prompts.h"
#include "qalign/syllabus.h"

namespace qalign::data {

namespace {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

// An installed photograph of the list, by a name unique in the set.
struct Photo {
  std::string name, subject, path;  // path: a file, or ARCHIVE.rcc:/INNER
  const DemoPhotograph* entry = nullptr;
};

// The photographs of demo_photographs() that are installed; each named by its subject, with a
// number where a subject has several.
std::vector<Photo> installed_photos() {
  std::map<std::string, int> per_subject;
  for (const auto& p : demo_photographs()) ++per_subject[p.subject];
  std::map<std::string, int> seen;
  std::vector<Photo> out;
  for (const auto& p : demo_photographs()) {
    const int k = ++seen[p.subject];
    const std::string file =
        p.path.substr(0, p.path.find(".rcc:") == std::string::npos ? std::string::npos : p.path.find(".rcc:") + 4);
    if (!fs::exists(file)) continue;
    out.push_back(
        {per_subject[p.subject] > 1 ? p.subject + "-" + std::to_string(k) : p.subject, p.subject, p.path, &p});
  }
  return out;
}

// A photograph's pixels; one inside a Qt resource archive is first copied out to `cache`.
Image decode_photo(const Photo& p, const fs::path& cache,
                   std::map<std::string, std::unique_ptr<QtResourceArchive>>& archives) {
  const size_t colon = p.path.find(".rcc:");
  if (colon == std::string::npos) return decode_image(p.path);
  const std::string rcc = p.path.substr(0, colon + 4), inner = p.path.substr(colon + 5);
  auto& archive = archives[rcc];
  if (!archive) archive = std::make_unique<QtResourceArchive>(rcc);
  const std::string copy = (cache / (p.name + fs::path(inner).extension().string())).string();
  const auto bytes = archive->read(inner);
  io::write_file_atomic(copy, std::string(bytes.begin(), bytes.end()));
  return decode_image(copy);
}

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
  Distortion distortion;
  double strength, mos;
};

// A size x size window of `img` at a random place.
Image random_crop(const Image& img, int size, std::mt19937_64& rng) {
  const int x0 = static_cast<int>(rng() % static_cast<uint64_t>(img.width - size + 1));
  const int y0 = static_cast<int>(rng() % static_cast<uint64_t>(img.height - size + 1));
  Image out(size, size);
  for (int y = 0; y < size; ++y) std::copy_n(img.pixel(x0, y0 + y), static_cast<size_t>(size) * 3, out.pixel(0, y));
  return out;
}

// Mean squared difference of neighbouring grey levels: how much fine detail a picture has.
double detail(const Image& img) {
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
Image detailed_crop(const Image& img, int size, std::mt19937_64& rng) {
  Image best = random_crop(img, size, rng);
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
std::vector<Variant> write_variants(const Image& scene, const std::string& stem, int count, int size,
                                    const std::vector<Distortion>& types, const fs::path& images_dir,
                                    std::mt19937_64& rng) {
  std::vector<Variant> out;
  for (int k = 0; k < count; ++k) {
    const int t = k % static_cast<int>(types.size());
    const int per_type = (count - t + static_cast<int>(types.size()) - 1) / static_cast<int>(types.size());
    const int j = k / static_cast<int>(types.size());
    const double s = round3((j + uniform01(rng)) / per_type);
    const uint64_t noise_seed = rng();
    const auto photo = normalise_reference(detailed_crop(scene, size, rng));
    const auto d = types[t];
    char name[256];
    std::snprintf(name, sizeof name, "%s_%03d_%s.%s", stem.c_str(), k, distortion_name(d).c_str(),
                  d == Distortion::kJpeg ? "jpg" : "png");
    // The JPEG type is written as the compressed file itself: the picture is exactly its decode.
    write_bytes((images_dir / name).string(),
                d == Distortion::kJpeg ? encode_jpeg(photo, s) : encode_png(distort(photo, d, s, noise_seed)));
    out.push_back({"images/" + std::string(name), stem, d, s, round3(distortion_mos(s))});
  }
  return out;
}

ScoredRecord scored_record(const Variant& v) {
  ScoredRecord r;
  r.image = v.image;
  r.mos = v.mos;
  r.mos_text = python_float_text(v.mos);
  return r;
}

// The photographs used, with their packages and licences: what a person needs to know before
// sharing the pictures made from them.
void write_sources_readme(const std::string& path, const std::vector<Photo>& photos, size_t n_test) {
  std::string md =
      "# The demo set's photographs\n\nMade by `qalign demo make-data` from these photographs of Debian 12's "
      "packages; the licence of each is its package's copyright file's. The pictures in images/ are crops of them, "
      "damaged on purpose. sources/ holds the ones copied out of Qt resource archives.\n\n"
      "| split | name | package | path | licence |\n|---|---|---|---|---|\n";
  for (size_t i = 0; i < photos.size(); ++i)
    md += std::string("| ") + (i < n_test ? "test" : "train") + " | " + photos[i].name + " | " +
          photos[i].entry->package + " | `" + photos[i].path + "` | " + photos[i].entry->licence + " |\n";
  io::write_file_atomic(path, md);
}

}  // namespace

DemoSetCounts make_demo_set(const DemoSetOptions& a) {
  if (a.per_image < 1 || a.test_per_image < 1) fail("--per-image", "", "must be at least 1");
  if (a.size < 32) fail("--size", "", "must be at least 32");
  if (a.scene != 0 && a.scene < a.size) fail("--scene", "", "must be at least --size");
  std::vector<Distortion> types;
  for (const auto& word : a.distortions) types.push_back(parse_distortion(word, "--distortions", ""));
  // By default scaled so the crops keep most of the scene (short side 8/7 of the crop: 256 for 224).
  const int scene_side = a.scene > 0 ? a.scene : (a.size * 8 + 6) / 7;
  std::vector<Photo> photos = installed_photos();
  if (photos.size() < 4)
    fail("/usr/share/doc/opencv-doc/examples/data", "",
         "found " + std::to_string(photos.size()) +
             " of the demo's photographs; install opencv-doc (scripts/setup.sh; --demo adds the rest)");

  // Subjects in a shuffled order (Fisher–Yates with our own draws, so the split is the same
  // everywhere for a seed); the first ones are held out until they hold test_fraction of the
  // photographs, so no subject is on both sides.
  std::vector<std::string> subjects;
  for (const auto& p : photos)
    if (std::find(subjects.begin(), subjects.end(), p.subject) == subjects.end()) subjects.push_back(p.subject);
  std::mt19937_64 rng(a.seed);
  for (size_t i = subjects.size() - 1; i > 0; --i) std::swap(subjects[i], subjects[rng() % (i + 1)]);
  const size_t want_test =
      std::clamp<size_t>(static_cast<size_t>(std::lround(photos.size() * a.test_fraction)), 1, photos.size() - 1);
  std::vector<Photo> ordered;
  size_t n_test = 0;
  for (const auto& subject : subjects) {
    for (const auto& p : photos)
      if (p.subject == subject) ordered.push_back(p);
    if (n_test < want_test) n_test = ordered.size();
  }
  if (n_test == ordered.size()) fail("--test-fraction", "", "leaves no photograph for training");
  photos = std::move(ordered);

  const fs::path out(a.out), images = out / "images", sources = out / "sources";
  std::error_code ec;
  for (const auto& dir : {images, sources}) {
    fs::create_directories(dir, ec);
    if (ec) fail(dir.string(), "", "cannot create: " + ec.message());
  }
  std::map<std::string, std::unique_ptr<QtResourceArchive>> archives;
  std::vector<Variant> train, test;
  ordered_json manifest = {{"seed", a.seed},
                           {"size", a.size},
                           {"train_photos", ordered_json::array()},
                           {"test_photos", ordered_json::array()},
                           {"photos", ordered_json::array()}};
  for (size_t i = 0; i < photos.size(); ++i) {
    const bool is_test = i < n_test;
    const auto scene = resize_short_side(decode_photo(photos[i], sources, archives), scene_side);
    auto v =
        write_variants(scene, photos[i].name, is_test ? a.test_per_image : a.per_image, a.size, types, images, rng);
    auto& split = is_test ? test : train;
    split.insert(split.end(), v.begin(), v.end());
    manifest[is_test ? "test_photos" : "train_photos"].push_back(photos[i].path);
    manifest["photos"].push_back({{"name", photos[i].name},
                                  {"subject", photos[i].subject},
                                  {"split", is_test ? "test" : "train"},
                                  {"package", photos[i].entry->package},
                                  {"path", photos[i].path},
                                  {"licence", photos[i].entry->licence}});
    log::info(is_test ? "test  " : "train ", photos[i].name, ": ", v.size(), " variants");
  }

  // Labels through the syllabus on the ratings' own scale [1, 5]; 5 itself (strength 0) is kept
  // as excellent rather than dropped.
  const OneHotLabeler labeler(Syllabus({1.0, 5.0}, OutOfRange::kClamp, "demo"));
  std::vector<ScoredRecord> train_records;
  for (const auto& v : train) train_records.push_back(scored_record(v));
  SftOptions sft;
  sft.seed = a.seed;
  const auto sft_out = make_sft_records(train_records, labeler, sft, "demo train set");
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
                       {"distortion", distortion_name(v.distortion)},
                       {"strength", v.strength},
                       {"mos", v.mos}});
  manifest["items"] = items;
  io::write_file_atomic((out / "manifest.json").string(), manifest.dump(1) + "\n");
  write_sources_readme((out / "README.md").string(), photos, n_test);

  return {train.size(), test.size(), photos.size() - n_test, n_test};
}

}  // namespace qalign::data
