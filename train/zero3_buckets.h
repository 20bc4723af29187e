#pragma once
// ZeRO-3's gradient buckets over one unit's trainable parameters. The parameters go in pieces
// (runs of consecutive ones of at most a bucket together, a larger one alone), each padded to a
// multiple of the world size W and seen as W rows of c = padded / W columns; rank r owns row r, so
// its share of each parameter is one range (as the optimizer's files keep it). A bucket takes
// blocks of columns of a few pieces, so that its reduce-scatter hands every rank a piece of its
// own rows, and holds about bucket_bytes of float32 at most: a piece wider than that is cut into
// column blocks, each a bucket of its own. So the float32 buffers in flight are bounded by the
// bucket size, not by the largest unit or parameter.
#include <cstdint>
#include <vector>

namespace qalign::train {

struct ZeroPieceRun {
  size_t first = 0, end = 0;  // parameters [first, end) of the unit's trainable ones
  int64_t numel = 0;
};

struct ColumnBlock {
  size_t piece = 0;  // index into the unit's pieces
  int64_t from = 0, cols = 0;
};

struct Zero3Bucket {
  std::vector<ColumnBlock> blocks;  // one after another in each row
  int64_t cols = 0;                 // the bucket holds W rows of these: W · cols elements
};

// Columns of a piece of `numel` elements over `world` ranks.
inline int64_t columns(int64_t numel, int64_t world) { return (numel + world - 1) / world; }

// `numel`: the unit's trainable parameters' sizes, in their order; the pieces in that order.
std::vector<ZeroPieceRun> group_pieces(const std::vector<int64_t>& numel, int64_t bucket_bytes);

// `numel`: the unit's pieces' sizes, in their order. The buckets go last piece first (the order
// backward delivers their gradients), a cut piece's blocks left to right.
std::vector<Zero3Bucket> cut_unit_buckets(const std::vector<int64_t>& numel, int64_t world, int64_t bucket_bytes);

}  // namespace qalign::train
