// ZeRO-3's pieces and gradient buckets (train/zero3_buckets.h): every parameter in one piece, no
// piece of several over a bucket; every column of every piece in exactly one bucket, no bucket over
// the size asked (but a single column), the last piece's first.
#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "train/zero3_buckets.h"

using namespace qalign;

namespace {

void expect_cut_well(const std::vector<int64_t>& numel, int64_t world, int64_t bucket_bytes) {
  SCOPED_TRACE("world " + std::to_string(world) + ", bucket " + std::to_string(bucket_bytes) + " B");
  const auto buckets = train::cut_unit_buckets(numel, world, bucket_bytes);
  std::map<size_t, int64_t> next_column;  // per parameter: the first column not yet seen
  size_t last = numel.size();
  for (const auto& b : buckets) {
    int64_t cols = 0;
    for (const auto& block : b.blocks) {
      ASSERT_LT(block.piece, numel.size());
      EXPECT_LE(block.piece, last) << "pieces go last first";
      last = block.piece;
      EXPECT_EQ(block.from, next_column[block.piece]) << "piece " << block.piece;
      next_column[block.piece] = block.from + block.cols;
      cols += block.cols;
    }
    EXPECT_EQ(cols, b.cols);
    EXPECT_LE(4 * world * b.cols, std::max(bucket_bytes, 4 * world));
  }
  for (size_t k = 0; k < numel.size(); ++k) EXPECT_EQ(next_column[k], train::columns(numel[k], world)) << k;
}

TEST(Zero3Buckets, EveryColumnOnceAndNoBucketOverTheSize) {
  const std::vector<int64_t> unit = {4096, 4096 * 4096, 7, 11008 * 4096, 1, 4096, 1000003};
  for (const int64_t world : {1, 2, 3, 8})
    for (const int64_t bytes : {int64_t{4}, int64_t{1} << 10, int64_t{25} << 20, int64_t{1} << 40})
      expect_cut_well(unit, world, bytes);
}

TEST(Zero3Buckets, SmallParametersShareABucketAndALargeOneIsCut) {
  const auto buckets = train::cut_unit_buckets({10, 10, 100}, 2, 4 * 2 * 20);  // 20 columns a bucket
  ASSERT_EQ(buckets.size(), 4u);  // 50 columns of the last in 20 + 20 + 10, then the two of 5
  EXPECT_EQ(buckets[0].blocks.at(0).piece, 2u);
  EXPECT_EQ(buckets[2].cols, 10);
  EXPECT_EQ(buckets[3].blocks.size(), 2u);
  EXPECT_EQ(buckets[3].cols, 10);
}

TEST(Zero3Buckets, PiecesGroupSmallParametersAndLeaveALargeOneAlone) {
  const std::vector<int64_t> numel = {3, 4, 100, 5, 6, 7};
  const auto pieces = train::group_pieces(numel, 4 * 12);  // 12 elements a bucket
  // From the end: 7 + 6 fits? no (13): {7}, {5, 6}, {100}, {3, 4}.
  ASSERT_EQ(pieces.size(), 4u);
  size_t next = 0;
  for (const auto& p : pieces) {
    EXPECT_EQ(p.first, next);
    int64_t sum = 0;
    for (size_t k = p.first; k < p.end; ++k) sum += numel[k];
    EXPECT_EQ(p.numel, sum);
    if (p.end - p.first > 1) EXPECT_LE(4 * p.numel, 4 * 12);
    next = p.end;
  }
  EXPECT_EQ(next, numel.size());
  EXPECT_EQ(pieces[1].first, 2u);
  EXPECT_EQ(pieces[1].end, 3u);
}

}  // namespace
