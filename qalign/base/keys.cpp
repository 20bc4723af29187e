#include "qalign/base/keys.h"

#include <algorithm>
#include <cctype>

namespace qalign::config {

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Lists longer than this are not spelled out: the message would bury the key the user wanted.
constexpr size_t kMaxListed = 8;
// Substring matches shorter than this ("lr", "r") match too much to be a useful suggestion.
constexpr size_t kMinSubstring = 4;

}  // namespace

size_t edit_distance(const std::string& a, const std::string& b) {
  // Optimal string alignment: Levenshtein plus adjacent transpositions, three rolling rows.
  const size_t n = b.size();
  std::vector<size_t> prev2(n + 1), prev(n + 1), cur(n + 1);
  for (size_t j = 0; j <= n; ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= n; ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) cur[j] = std::min(cur[j], prev2[j - 2] + 1);
    }
    std::swap(prev2, prev);
    std::swap(prev, cur);
  }
  return prev[n];
}

std::string closest_key(const std::string& key, const std::vector<std::string>& candidates) {
  const std::string k = lower(key);
  // A third of the key's length, at least one edit: "hiden_size" is a typo, "seed" → "steps" is
  // not.
  const size_t allowed = std::max<size_t>(1, k.size() / 3);
  std::string best;
  size_t best_distance = allowed + 1;
  for (const auto& c : candidates) {
    const size_t d = edit_distance(k, lower(c));
    if (d < best_distance) best_distance = d, best = c;
  }
  if (!best.empty()) return best;
  if (k.size() < kMinSubstring) return "";
  for (const auto& c : candidates) {
    const std::string lc = lower(c);
    const bool related =
        lc.find(k) != std::string::npos || (lc.size() >= kMinSubstring && k.find(lc) != std::string::npos);
    if (related && (best.empty() || c.size() < best.size())) best = c;
  }
  return best;
}

std::string unknown_key_message(const std::string& key, const std::vector<std::string>& candidates) {
  const std::string suggestion = closest_key(key, candidates);
  if (!suggestion.empty()) return "unknown key; did you mean '" + suggestion + "'?";
  if (candidates.empty()) return "unknown key; no keys are allowed here";
  if (candidates.size() > kMaxListed) return "unknown key (no known key is similar)";
  std::string list;
  for (const auto& c : candidates) list += (list.empty() ? "" : ", ") + c;
  return "unknown key; expected one of: " + list;
}

}  // namespace qalign::config
