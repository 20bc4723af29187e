#pragma once
// The random numbers of data preparation (question choice, dataset mixing): SplitMix64, which
// gives the same sequence for a seed on every platform and standard library, unlike the
// implementation-defined std:: distributions.
#include <cstdint>

namespace qalign::data {

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}

  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

  // Uniform in [0, n) for n > 0, without modulo bias (draws below 2^64 mod n are redrawn).
  uint64_t below(uint64_t n) {
    const uint64_t reject = (0 - n) % n;
    uint64_t x;
    do x = next();
    while (x < reject);
    return x % n;
  }

 private:
  uint64_t state_;
};

// A draw that depends only on (seed, index): sample i gets the same choice whatever else the
// file holds or drops.
inline uint64_t draw_for_sample(uint64_t seed, uint64_t index, uint64_t n) {
  SplitMix64 mixer(seed);
  return SplitMix64(mixer.next() ^ index).below(n);
}

}  // namespace qalign::data
