// InMemorySource: the Loader's historical behaviour (take() of the rows, Fisher-Yates per epoch), kept
// bit-identical so in-memory jobs see the batches they always saw.
#include "frugal/data/sample_source.h"

#include <utility>

namespace frugal::data {

InMemorySource::InMemorySource(const Dataset& dataset)
    : dataset_{dataset.inputs.contiguous(), dataset.targets.contiguous()} {}

Shape InMemorySource::sample_shape() const {
  const Shape& shape = dataset_.inputs.shape();
  return Shape(shape.begin() + 1, shape.end());
}

std::vector<int64_t> InMemorySource::shuffled_order(uint64_t seed, int64_t epoch) const {
  const int64_t n = size();
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[size_t(i)] = i;
  Rng rng(seed, uint64_t(epoch), RandomPurpose::shuffle);  // Fisher-Yates
  for (int64_t i = n - 1; i > 0; --i) std::swap(order[size_t(i)], order[rng.below(uint64_t(i + 1))]);
  return order;
}

}  // namespace frugal::data
