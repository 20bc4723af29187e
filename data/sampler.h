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
  // Data-parallel processes and this one's rank (world_size above also counts accumulation).
  int64_t rank = 0, ranks = 1;
};

// LazySupervisedDataset.modality_lengths: the whitespace word count of the conversation, negative
// for a sample without image or video.
int64_t modality_length(const std::vector<std::string>& turn_values, bool has_media);

// Sample indices for `epoch`, a permutation of 0..lengths.size()-1.
std::vector<int64_t> epoch_order(const std::vector<int64_t>& modality_lengths, const SamplerOptions& o, int64_t epoch);

// The part of an epoch's global `order` that `rank` of `ranks` processes trains on: the order is
// cut into batches of batch_size and batch j goes to rank j % ranks (accelerate's sharding), so
// the ranks' k-th batches together are the k-th batch of one process with ranks · batch_size,
// and no sample goes to two ranks. The last round may leave some ranks short or empty.
std::vector<int64_t> rank_share(const std::vector<int64_t>& order, int64_t batch_size, int64_t rank, int64_t ranks);

// How many samples of its rank_share `rank` of `ranks` has taken once all ranks together have
// taken the first `taken` of the order: where it resumes a checkpoint written by any number of
// processes.
int64_t rank_position(int64_t taken, int64_t batch_size, int64_t rank, int64_t ranks);

}  // namespace qalign::data
