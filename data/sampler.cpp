#include "data/sampler.h"

#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <limits>

#include "qalign/base/error.h"

namespace qalign::data {

namespace {

// Python's str.split(): runs of whitespace separate words.
int64_t word_count(const std::string& s) {
  int64_t n = 0;
  bool in_word = false;
  for (unsigned char c : s) {
    const bool space = std::isspace(c) != 0;
    if (!space && !in_word) ++n;
    in_word = !space;
  }
  return n;
}

std::vector<int64_t> randperm(int64_t n, torch::Generator& gen) {
  const auto t = torch::randperm(n, gen, torch::kInt64);
  return {t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + n};
}

// split_to_even_chunks: greedy by total length when the megabatch divides evenly, else strided.
std::vector<std::vector<int64_t>> split_to_even_chunks(const std::vector<int64_t>& indices,
                                                       const std::vector<int64_t>& lengths, int64_t chunks) {
  std::vector<std::vector<int64_t>> out(chunks);
  const auto n = static_cast<int64_t>(indices.size());
  if (n % chunks != 0) {
    for (int64_t i = 0; i < n; ++i) out[i % chunks].push_back(indices[i]);
    return out;
  }
  const int64_t per_chunk = n / chunks;
  std::vector<double> total(chunks, 0.0);
  for (const int64_t index : indices) {
    const auto shortest = std::min_element(total.begin(), total.end()) - total.begin();  // first minimum
    out[shortest].push_back(index);
    total[shortest] += static_cast<double>(lengths[index]);
    if (static_cast<int64_t>(out[shortest].size()) == per_chunk)
      total[shortest] = std::numeric_limits<double>::infinity();
  }
  return out;
}

// get_length_grouped_indices for positive lengths.
std::vector<int64_t> length_grouped(const std::vector<int64_t>& lengths, int64_t batch_size, int64_t world_size,
                                    torch::Generator& gen) {
  const auto indices = randperm(static_cast<int64_t>(lengths.size()), gen);
  const auto megabatch = static_cast<size_t>(world_size * batch_size);
  std::vector<int64_t> out;
  for (size_t begin = 0; begin < indices.size(); begin += megabatch) {
    std::vector<int64_t> mb(indices.begin() + begin, indices.begin() + std::min(indices.size(), begin + megabatch));
    // sorted(..., reverse=True) is stable: equal lengths keep their drawn order.
    std::stable_sort(mb.begin(), mb.end(), [&](int64_t a, int64_t b) { return lengths[a] > lengths[b]; });
    for (const auto& chunk : split_to_even_chunks(mb, lengths, world_size))
      out.insert(out.end(), chunk.begin(), chunk.end());
  }
  return out;
}

// get_modality_length_grouped_indices.
std::vector<int64_t> modality_grouped(const std::vector<int64_t>& lengths, int64_t batch_size, int64_t world_size,
                                      torch::Generator& gen) {
  for (const int64_t l : lengths)
    if (l == 0) throw Error("group_by_modality_length: a sample has an empty conversation (length 0)");
  const bool all_mm = std::all_of(lengths.begin(), lengths.end(), [](int64_t l) { return l > 0; });
  const bool all_lang = std::all_of(lengths.begin(), lengths.end(), [](int64_t l) { return l < 0; });
  if (all_mm || all_lang) {
    std::vector<int64_t> abs_lengths;
    for (const int64_t l : lengths) abs_lengths.push_back(std::abs(l));
    return length_grouped(abs_lengths, batch_size, world_size, gen);
  }
  std::vector<int64_t> mm_idx, mm_len, lang_idx, lang_len;
  for (size_t i = 0; i < lengths.size(); ++i) {
    if (lengths[i] > 0) {
      mm_idx.push_back(static_cast<int64_t>(i));
      mm_len.push_back(lengths[i]);
    } else {
      lang_idx.push_back(static_cast<int64_t>(i));
      lang_len.push_back(-lengths[i]);
    }
  }
  const auto megabatches_of = [&](const std::vector<int64_t>& idx, const std::vector<int64_t>& len) {
    std::vector<std::vector<int64_t>> mbs;
    const auto order = length_grouped(len, batch_size, world_size, gen);
    const auto size = static_cast<size_t>(world_size * batch_size);
    for (size_t b = 0; b < order.size(); b += size) {
      std::vector<int64_t> mb;
      for (size_t i = b; i < std::min(order.size(), b + size); ++i) mb.push_back(idx[order[i]]);
      mbs.push_back(mb);
    }
    return mbs;
  };
  auto mm = megabatches_of(mm_idx, mm_len);
  auto lang = megabatches_of(lang_idx, lang_len);
  // The last (possibly short) megabatch of each modality goes, merged and sorted, at the end.
  std::vector<int64_t> additional = mm.back();
  additional.insert(additional.end(), lang.back().begin(), lang.back().end());
  std::vector<std::vector<int64_t>> megabatches(mm.begin(), mm.end() - 1);
  megabatches.insert(megabatches.end(), lang.begin(), lang.end() - 1);
  std::vector<int64_t> out;
  for (const int64_t i : randperm(static_cast<int64_t>(megabatches.size()), gen))
    out.insert(out.end(), megabatches[i].begin(), megabatches[i].end());
  std::sort(additional.begin(), additional.end());
  out.insert(out.end(), additional.begin(), additional.end());
  return out;
}

}  // namespace

int64_t modality_length(const std::vector<std::string>& turn_values, bool has_media) {
  int64_t n = 0;
  for (const auto& v : turn_values) n += word_count(v);
  return has_media ? n : -n;
}

std::vector<int64_t> epoch_order(const std::vector<int64_t>& modality_lengths, const SamplerOptions& o, int64_t epoch) {
  const auto n = static_cast<int64_t>(modality_lengths.size());
  if (!o.shuffle) {
    std::vector<int64_t> order(n);
    for (int64_t i = 0; i < n; ++i) order[i] = i;
    return order;
  }
  if (n == 0) return {};
  auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed + static_cast<uint64_t>(epoch));
  if (o.group_by_modality_length) return modality_grouped(modality_lengths, o.batch_size, o.world_size, gen);
  return randperm(n, gen);
}

std::vector<int64_t> rank_share(const std::vector<int64_t>& order, int64_t batch_size, int64_t rank, int64_t ranks) {
  std::vector<int64_t> out;
  const auto n = static_cast<int64_t>(order.size());
  for (int64_t begin = rank * batch_size; begin < n; begin += ranks * batch_size)
    out.insert(out.end(), order.begin() + begin, order.begin() + std::min(n, begin + batch_size));
  return out;
}

int64_t rank_position(int64_t taken, int64_t batch_size, int64_t rank, int64_t ranks) {
  int64_t position = 0;
  for (int64_t j = rank; j * batch_size < taken; j += ranks) position += std::min(taken - j * batch_size, batch_size);
  return position;
}

}  // namespace qalign::data
