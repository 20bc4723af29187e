#pragma once
// The order in which one epoch visits the training samples, as the authors' trainer draws it
// (q_align/train/mplug_owl2_trainer.py): with group_by_modality_length, a random permutation cut
// into megabatches of world_size · batch_size samples, each sorted by length, longest first, and
// dealt into world_size even chunks; text-only samples (negative lengths) grouped apart from
// multimodal ones. Otherwise a plain random permutation (HF's RandomSampler), or file order.
//
// The randomness comes from torch.randperm on a CPU generator seeded with (seed, epoch), so an
// epoch's order depends on nothing else; the authors' global-generator draws cannot be matched
// bit for bit anyway.
#include <cstdint>
#include <string>
#include <vector>

namespace qalign::data {

struct SamplerOptions {
  bool shuffle = true;
  bool group_by_modality_length = true;
  int64_t batch_size = 1;  // per device
  // Processes · gradient accumulation steps: the authors pass world_size · accumulation here.
  int64_t world_size = 1;
  uint64_t seed = 42;
};

// LazySupervisedDataset.modality_lengths: the whitespace word count of the conversation, negative
// for a sample without image or video.
int64_t modality_length(const std::vector<std::string>& turn_values, bool has_media);

// Sample indices for `epoch`, a permutation of 0..lengths.size()-1.
std::vector<int64_t> epoch_order(const std::vector<int64_t>& modality_lengths, const SamplerOptions& o,
                                 int64_t epoch);

}  // namespace qalign::data
