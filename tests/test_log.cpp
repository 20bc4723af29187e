// The log's clock text, which the trainer's and the scorer's progress lines share for their
// elapsed times and ETAs.
#include <gtest/gtest.h>

#include "qalign/base/log.h"

using qalign::log::clock_text;

TEST(Log, ClockTextIsHoursMinutesSeconds) {
  EXPECT_EQ(clock_text(0), "0:00:00");
  EXPECT_EQ(clock_text(59.4), "0:00:59");
  EXPECT_EQ(clock_text(59.5), "0:01:00");
  EXPECT_EQ(clock_text(3723), "1:02:03");
  EXPECT_EQ(clock_text(100 * 3600 + 1), "100:00:01");
}

TEST(Log, ClockTextReadsNegativeSecondsAsZero) { EXPECT_EQ(clock_text(-5), "0:00:00"); }
