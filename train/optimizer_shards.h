#pragma once
// Optimizer state in a checkpoint as ranges of parameters, so that a checkpoint written by N
// ranks resumes on M. An optimizer file (optimizer.safetensors of a run without ZeRO, or
// optimizer.rank<r>-of-<N>.safetensors, one per rank) holds for each parameter it covers a
// contiguous range of the flattened elements:
//   exp_avg.<name>, exp_avg_sq.<name>, step.<name>   AdamW's state (absent before its first step)
//   master.<name>                                    float32 master values (ZeRO shards)
//   offset.<name>                                    int64 [1], the range's first element; absent
//                                                    means 0 (a whole parameter)
#include <torch/torch.h>

#include <string>
#include <vector>

#include "qalign/io/state_dict.h"
#include "train/zero.h"

namespace qalign::train {

// The optimizer files of checkpoint folder `dir`: optimizer.safetensors, or every rank's shard
// (an incomplete set of shards is an error naming the missing file).
std::vector<std::string> optimizer_files(const std::string& dir);

// One rank's shard: `state` (AdamW::state_dict over the slices), the slices' masters and ranges.
io::StateDict shard_contents(const io::StateDict& state, const std::vector<ShardRange>& ranges,
                             const std::vector<torch::Tensor>& masters);

// For each wanted range, the state assembled from whatever files cover it, shaped like `like[i]`
// and keyed by want[i].name as AdamW::load_state_dict reads it, plus master.<name> when every
// piece holds masters. A range whose elements no file fully covers is an error naming the
// parameter and the first missing element.
io::StateDict read_optimizer_ranges(const std::string& dir, const std::vector<ShardRange>& want,
                                    const std::vector<torch::Tensor>& like);

}  // namespace qalign::train
