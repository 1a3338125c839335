// Counter-based random numbers (Philox4x32-10): a value depends only on (seed, stream, counter),
// never on call order or threads, which is what makes runs bit-reproducible and resumable.
// Limits: not cryptographic. Streams are derived from (seed, step, purpose) by the caller.
#pragma once

#include <array>
#include <cstdint>

namespace frugal {

// Philox4x32-10 block: four 32-bit outputs for one 128-bit counter and a 64-bit key.
std::array<uint32_t, 4> philox4x32(std::array<uint32_t, 4> counter, uint64_t key);

// Names the use of random numbers so that two uses never share a stream.
enum class RandomPurpose : uint32_t {
  init = 1, shuffle = 2, dropout = 3, augment = 4, sample = 5, split = 6, test = 7, adapter = 8, user = 100,
};

// A cheap sequential generator over one Philox stream. Copyable; state is (key, counter).
class Rng {
 public:
  Rng(uint64_t seed, uint64_t stream, RandomPurpose purpose = RandomPurpose::user);
  uint32_t next_u32();
  uint64_t next_u64();
  float uniform();                    // [0, 1), 24 random bits
  double uniform_double();            // [0, 1), 53 random bits
  float normal();                     // standard normal, Box-Muller
  uint64_t below(uint64_t bound);     // uniform integer in [0, bound), unbiased
  uint64_t counter() const { return counter_; }
  void set_counter(uint64_t c) { counter_ = c; buffered_ = 4; }

 private:
  uint64_t key_;
  uint64_t stream_;
  uint64_t counter_ = 0;
  std::array<uint32_t, 4> buffer_{};
  int buffered_ = 4;  // index of the next unused word in buffer_; 4 = empty
};

// Mixes values into a 64-bit key (splitmix64 finalizer chain); used to derive stream keys.
uint64_t mix_key(uint64_t a, uint64_t b);

}  // namespace frugal
