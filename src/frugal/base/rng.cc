#include "frugal/base/rng.h"

#include <cmath>

namespace frugal {

std::array<uint32_t, 4> philox4x32(std::array<uint32_t, 4> c, uint64_t key) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = uint64_t(kMul0) * c[0];
    uint64_t p1 = uint64_t(kMul1) * c[2];
    uint32_t hi0 = uint32_t(p0 >> 32), lo0 = uint32_t(p0);
    uint32_t hi1 = uint32_t(p1 >> 32), lo1 = uint32_t(p1);
    c = {hi1 ^ c[1] ^ k0, lo1, hi0 ^ c[3] ^ k1, lo0};
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  return c;
}

uint64_t mix_key(uint64_t a, uint64_t b) {
  uint64_t z = a + 0x9E3779B97F4A7C15ull * (b + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

Rng::Rng(uint64_t seed, uint64_t stream, RandomPurpose purpose)
    : key_(mix_key(seed, static_cast<uint64_t>(purpose))), stream_(stream) {}

uint32_t Rng::next_u32() {
  if (buffered_ == 4) {
    buffer_ = philox4x32({uint32_t(counter_), uint32_t(counter_ >> 32), uint32_t(stream_),
                          uint32_t(stream_ >> 32)},
                         key_);
    ++counter_;
    buffered_ = 0;
  }
  return buffer_[buffered_++];
}

uint64_t Rng::next_u64() {
  uint64_t hi = next_u32();
  return (hi << 32) | next_u32();
}

float Rng::uniform() { return float(next_u32() >> 8) * (1.0f / 16777216.0f); }

double Rng::uniform_double() { return double(next_u64() >> 11) * (1.0 / 9007199254740992.0); }

float Rng::normal() {
  // Box-Muller on (0,1] x [0,1): one normal per call, the pair's second half dropped for simplicity.
  double u1 = 1.0 - uniform_double();
  double u2 = uniform_double();
  return float(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
}

uint64_t Rng::below(uint64_t bound) {
  if (bound <= 1) return 0;
  uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
  uint64_t x;
  do x = next_u64(); while (x >= limit);
  return x % bound;
}

}  // namespace frugal
