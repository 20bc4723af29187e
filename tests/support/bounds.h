#pragma once
// The bounds every hostile-input case is held to (ends within 20 s and 1.5 GB, fails naming the
// input), and the little-endian/big-endian byte writers the crafted headers are built with.
#include <gtest/gtest.h>

#include <cstdint>
#include <iostream>
#include <string>

#include "tests/support/fixtures.h"

namespace qalign::test {

inline std::string le16(uint16_t v) { return {char(v), char(v >> 8)}; }
inline std::string le32(uint32_t v) { return {char(v), char(v >> 8), char(v >> 16), char(v >> 24)}; }
inline std::string be32(uint32_t v) { return {char(v >> 24), char(v >> 16), char(v >> 8), char(v)}; }

// `qalign score --model <the tiny model> ARGS`, measured.
inline Measured score_with_tiny_model(const std::string& args) {
  return run_qalign_measured("score --model " + kTinyModel + " " + args, 60);
}

inline void expect_bounded(const Measured& m, const std::string& what) {
  std::cout << "[ measured ] " << what << ": " << m.seconds << " s, " << m.peak_mb << " MB peak, rc " << m.exit_code
            << "\n";
  EXPECT_FALSE(m.timed_out) << what;
  EXPECT_LT(m.seconds, 20) << what;
  EXPECT_LT(m.peak_mb, 1500) << what;
}

// Runs `qalign ARGS` and checks the case's bounds: ends in time, in bounded memory, and never
// crashes or ends in an error nobody named.
inline Measured run_qalign_bounded(const std::string& args) {
  auto m = run_qalign_measured(args);
  EXPECT_FALSE(m.timed_out) << args;
  EXPECT_LT(m.seconds, 20) << args;
  EXPECT_LT(m.peak_mb, 1500) << args;
  EXPECT_EQ(m.output.find("terminate called"), std::string::npos) << m.output;
  EXPECT_EQ(m.output.find("unexpected error"), std::string::npos) << m.output;
  return m;
}

// The input is refused with "PATH: ...PROBLEM..." and the run fails.
inline void expect_refused(const Measured& m, const std::string& path, const std::string& problem) {
  expect_bounded(m, path);
  EXPECT_EQ(m.exit_code, 1) << m.output;
  const auto at = m.output.find(path + ": ");
  ASSERT_NE(at, std::string::npos) << m.output;
  EXPECT_NE(m.output.find(problem, at), std::string::npos) << m.output;
}

}  // namespace qalign::test
