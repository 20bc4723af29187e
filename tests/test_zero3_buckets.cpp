// ZeRO-3's gradient buckets (train/zero3_buckets.h): every column of every parameter in exactly one
// bucket, no bucket over the size asked (but a single column), the last parameter's first.
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
      ASSERT_LT(block.param, numel.size());
      EXPECT_LE(block.param, last) << "parameters go last first";
      last = block.param;
      EXPECT_EQ(block.from, next_column[block.param]) << "parameter " << block.param;
      next_column[block.param] = block.from + block.cols;
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
  EXPECT_EQ(buckets[0].blocks.at(0).param, 2u);
  EXPECT_EQ(buckets[2].cols, 10);
  EXPECT_EQ(buckets[3].blocks.size(), 2u);
  EXPECT_EQ(buckets[3].cols, 10);
}

}  // namespace
