#pragma once
// The syllabus (SPEC §6): how a mean opinion score (MOS) becomes what a training sample answers.
// Levels are numbered 0 = bad … 4 = excellent, bottom-up as the intervals are; label files and
// the scorer list the words the other way round, best first (level_words()).
//
// Two labelers share one interface: Q-Align's one-hot level word (this file) and DeQA-Score's
// soft level distribution (qalign/soft_labels.h).
#include <optional>
#include <string>
#include <vector>

namespace qalign {

constexpr int kNumLevels = 5;

// "bad", "poor", "fair", "good", "excellent" for 0 … 4.
const std::string& level_word(int level);
// The level of one of those words, or -1 for any other word.
int level_of_word(const std::string& word);

// The score range that five equal intervals split.
struct MosRange {
  double min = 0;
  double max = 0;
};

// Ranges that reproduce the authors' training files (SPEC §6.2 table), by name: "koniq"
// (0.1 % order statistics of all 10073 KonIQ MOS), "kadid" (same rule, 10125 MOS), "spaq" (0 and
// 94, which is not the order-statistic rule). The full per-dataset score lists the first two come
// from are not shipped with the label files (those are already filtered), hence the constants.
// An unknown name throws naming `source` and `field`.
MosRange preset_range(const std::string& name, const std::string& source, const std::string& field);
const std::vector<std::string>& preset_names();

// The authors' rule for a dataset's range: sort all its MOS, k = floor(N / 1000),
// [sorted[k], sorted[N − k]] (0-based; trims the 0.1 % tails). With fewer than 1000 scores k is 0
// and sorted[N] does not exist: the maximum is used. Throws naming `source` when `scores` is empty.
MosRange order_statistic_range(std::vector<double> scores, const std::string& source);
// Smallest and largest score: DeQA-Score's normalisation range.
MosRange min_max_range(const std::vector<double>& scores, const std::string& source);

// What happens to a score outside the range: training files drop the sample; the LSVQ test files
// clamp it to bad / excellent.
enum class OutOfRange { kDrop, kClamp };
OutOfRange parse_out_of_range(const std::string& word, const std::string& source, const std::string& field);

// Q-Align's rule, the one that reproduces the released JSONs: step = (M − m) / 5 in double, level
// i iff m + i·step ≤ s < m + (i + 1)·step (half-open, thresholds computed as m + i·step, so
// 3 · 18.8 = 56.400000000000006 keeps SPAQ's 56.4 in "fair"). A range wider than the largest
// double (ends near ±1e308) is split on halves, m/2 + i·((M/2 − m/2)/5), doubled: exactly the
// same thresholds where M − m is finite, finite ones where it is not.
class Syllabus {
 public:
  // Throws naming `source` unless min < max (both finite).
  Syllabus(MosRange range, OutOfRange policy, const std::string& source);
  // The level of `mos`; nullopt when it is outside [m, M) and the policy drops it.
  std::optional<int> level(double mos) const;
  // m + i·step for i = 0 … 5 (threshold(5) is computed the same way, not taken as M).
  double threshold(int i) const;
  const MosRange& range() const { return range_; }

 private:
  MosRange range_;
  bool halved_;  // M − m overflows: step_ is that of the halved range
  double step_;
  OutOfRange policy_;
};

// What one sample learns: the level of its answer word and, for soft targets, a probability per
// level, best first (excellent … bad) as DeQA-Score's files list them.
struct LevelTarget {
  int level = 0;
  std::vector<double> probs;  // empty for a one-hot target
};

class Labeler {
 public:
  virtual ~Labeler() = default;
  // The target for a score (and its raters' standard deviation, which only needs_std() labelers
  // read); nullopt drops the sample.
  virtual std::optional<LevelTarget> label(double mos, std::optional<double> std) const = 0;
  virtual bool needs_std() const = 0;
};

// Q-Align: the level word alone.
class OneHotLabeler : public Labeler {
 public:
  explicit OneHotLabeler(Syllabus syllabus) : syllabus_(std::move(syllabus)) {}
  std::optional<LevelTarget> label(double mos, std::optional<double> std) const override;
  bool needs_std() const override { return false; }

 private:
  Syllabus syllabus_;
};

}  // namespace qalign
