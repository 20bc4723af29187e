#include "qalign/syllabus.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "qalign/base/error.h"

namespace qalign {

namespace {

const std::vector<std::string>& words_bottom_up() {
  static const std::vector<std::string> words = {"bad", "poor", "fair", "good", "excellent"};
  return words;
}

std::string number_text(double v) {
  std::ostringstream os;
  os.precision(17);
  os << v;
  return os.str();
}

}  // namespace

const std::string& level_word(int level) {
  if (level < 0 || level >= kNumLevels) fail("syllabus", "level", std::to_string(level) + " is not in 0 … 4");
  return words_bottom_up()[level];
}

int level_of_word(const std::string& word) {
  const auto& w = words_bottom_up();
  const auto it = std::find(w.begin(), w.end(), word);
  return it == w.end() ? -1 : static_cast<int>(it - w.begin());
}

const std::vector<std::string>& preset_names() {
  static const std::vector<std::string> names = {"koniq", "spaq", "kadid"};
  return names;
}

MosRange preset_range(const std::string& name, const std::string& source, const std::string& field) {
  if (name == "koniq") return {6.68487394958, 85.35625};
  if (name == "spaq") return {0.0, 94.0};
  if (name == "kadid") return {1.07, 4.87};
  std::string known;
  for (const auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
  fail(source, field, "unknown preset \"" + name + "\" (known: " + known + ")");
}

MosRange order_statistic_range(std::vector<double> scores, const std::string& source) {
  if (scores.empty()) fail(source, "", "no scores to take a range from");
  std::sort(scores.begin(), scores.end());
  const size_t n = scores.size(), k = n / 1000;
  return {scores[k], scores[std::min(n - k, n - 1)]};
}

MosRange min_max_range(const std::vector<double>& scores, const std::string& source) {
  if (scores.empty()) fail(source, "", "no scores to take a range from");
  const auto [lo, hi] = std::minmax_element(scores.begin(), scores.end());
  return {*lo, *hi};
}

OutOfRange parse_out_of_range(const std::string& word, const std::string& source, const std::string& field) {
  if (word == "drop") return OutOfRange::kDrop;
  if (word == "clamp") return OutOfRange::kClamp;
  fail(source, field, "\"" + word + "\" is neither \"drop\" nor \"clamp\"");
}

Syllabus::Syllabus(MosRange range, OutOfRange policy, const std::string& source)
    : range_(range),
      halved_(!std::isfinite(range.max - range.min)),
      step_(halved_ ? (range.max / 2 - range.min / 2) / kNumLevels : (range.max - range.min) / kNumLevels),
      policy_(policy) {
  if (!std::isfinite(range.min) || !std::isfinite(range.max) || !(range.min < range.max))
    fail(source, "range", "needs finite MIN < MAX, got " + number_text(range.min) + ", " + number_text(range.max));
}

double Syllabus::threshold(int i) const { return halved_ ? 2 * (range_.min / 2 + i * step_) : range_.min + i * step_; }

std::optional<int> Syllabus::level(double mos) const {
  if (std::isnan(mos)) return std::nullopt;
  // Compared against the computed thresholds, not M itself: that is what the released files show.
  if (mos < threshold(0)) return policy_ == OutOfRange::kClamp ? std::optional<int>(0) : std::nullopt;
  for (int i = 0; i < kNumLevels; ++i)
    if (mos < threshold(i + 1)) return i;
  return policy_ == OutOfRange::kClamp ? std::optional<int>(kNumLevels - 1) : std::nullopt;
}

std::optional<LevelTarget> OneHotLabeler::label(double mos, std::optional<double>) const {
  const auto level = syllabus_.level(mos);
  if (!level) return std::nullopt;
  return LevelTarget{*level, {}};
}

}  // namespace qalign
