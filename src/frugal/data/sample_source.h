// Where a Loader's training samples come from: an in-memory Dataset, or packed shards streamed from
// disk (data/packed.h). A source gives rows by index, already f32 and normalized, and may choose its
// own shuffled order (packed data shuffles shards and a bounded buffer, not the whole set).
// Limits: gather() is called concurrently from the loader threads, so sources are thread-safe.
#pragma once

#include <cstdint>
#include <vector>

#include "frugal/base/rng.h"
#include "frugal/data/dataset.h"

namespace frugal::data {

class SampleSource {
 public:
  virtual ~SampleSource() = default;
  virtual int64_t size() const = 0;
  virtual Shape sample_shape() const = 0;  // one input, e.g. (1, 28, 28)
  // The shuffled sample order of an epoch: a pure function of (seed, epoch), every row once.
  virtual std::vector<int64_t> shuffled_order(uint64_t seed, int64_t epoch) const = 0;
  // Rows `rows` in that order: inputs f32 (B, ...), targets i64 (B).
  virtual Dataset gather(const std::vector<int64_t>& rows) const = 0;
};

// The whole set in memory (inputs any dtype as prepared, usually f32); shuffles with Fisher-Yates
// keyed by Rng(seed, epoch, RandomPurpose::shuffle), as the Loader always has.
class InMemorySource final : public SampleSource {
 public:
  explicit InMemorySource(const Dataset& dataset);
  int64_t size() const override { return dataset_.size(); }
  Shape sample_shape() const override;
  std::vector<int64_t> shuffled_order(uint64_t seed, int64_t epoch) const override;
  Dataset gather(const std::vector<int64_t>& rows) const override { return take(dataset_, rows); }
  const Dataset& dataset() const { return dataset_; }

 private:
  Dataset dataset_;
};

}  // namespace frugal::data
