// Memory accounting of Storage by category: the thread-local guard, re-tagging, frees, peaks and
// their reset. Figures are compared as differences, as other storages may be alive in the process.
#include <thread>

#include <gtest/gtest.h>

#include "frugal/tensor/tensor.h"

namespace frugal {
namespace {

int64_t live(MemoryCategory c) { return Storage::live_bytes(c); }

int64_t sum_of_categories() {
  int64_t total = 0;
  for (int c = 0; c < kMemoryCategories; ++c) total += Storage::live_bytes(MemoryCategory(c));
  return total;
}

TEST(MemoryAccounting, GuardTagsAllocationsAndNests) {
  const int64_t weights = live(MemoryCategory::weights), activations = live(MemoryCategory::activations);
  const int64_t other = live(MemoryCategory::other);
  EXPECT_EQ(MemoryCategoryGuard::current(), MemoryCategory::other);
  Tensor a, b, c;
  {
    MemoryCategoryGuard outer(MemoryCategory::activations);
    a = Tensor::empty({10}, DType::f32);  // 40 bytes
    {
      MemoryCategoryGuard inner(MemoryCategory::weights);
      EXPECT_EQ(MemoryCategoryGuard::current(), MemoryCategory::weights);
      b = Tensor::empty({3}, DType::f64);  // 24 bytes
    }
    EXPECT_EQ(MemoryCategoryGuard::current(), MemoryCategory::activations);
    c = Tensor::empty({5}, DType::i32);  // 20 bytes
  }
  EXPECT_EQ(MemoryCategoryGuard::current(), MemoryCategory::other);
  EXPECT_EQ(live(MemoryCategory::activations) - activations, 60);
  EXPECT_EQ(live(MemoryCategory::weights) - weights, 24);
  EXPECT_EQ(live(MemoryCategory::other), other);
  EXPECT_EQ(a.storage()->category(), MemoryCategory::activations);
  EXPECT_EQ(b.storage()->category(), MemoryCategory::weights);
  EXPECT_EQ(sum_of_categories(), Storage::live_bytes());
  a = Tensor(), b = Tensor(), c = Tensor();
  EXPECT_EQ(live(MemoryCategory::activations), activations);
  EXPECT_EQ(live(MemoryCategory::weights), weights);
}

TEST(MemoryAccounting, RetagMovesBytesAndTheFreeFollowsTheTag) {
  const int64_t activations = live(MemoryCategory::activations), gradients = live(MemoryCategory::gradients);
  Tensor g;
  {
    MemoryCategoryGuard guard(MemoryCategory::activations);
    g = Tensor::zeros({7, 3});  // 84 bytes, a backward temporary
  }
  EXPECT_EQ(live(MemoryCategory::activations) - activations, 84);
  g.storage()->set_category(MemoryCategory::gradients);  // adopted as a .grad
  EXPECT_EQ(live(MemoryCategory::activations), activations);
  EXPECT_EQ(live(MemoryCategory::gradients) - gradients, 84);
  Tensor view = g.slice_view(0, 1, 3);  // views share the storage and its tag
  EXPECT_EQ(view.storage()->category(), MemoryCategory::gradients);
  g = Tensor(), view = Tensor();
  EXPECT_EQ(live(MemoryCategory::gradients), gradients);
  EXPECT_EQ(live(MemoryCategory::activations), activations);
  EXPECT_EQ(sum_of_categories(), Storage::live_bytes());
}

TEST(MemoryAccounting, BorrowedMemoryIsNotCounted) {
  const int64_t total = Storage::live_bytes();
  std::vector<float> owner(100);
  Tensor t = Tensor::from_blob(owner.data(), {100}, DType::f32, nullptr);
  t.storage()->set_category(MemoryCategory::weights);
  EXPECT_EQ(Storage::live_bytes(), total);
  EXPECT_EQ(sum_of_categories(), Storage::live_bytes());
}

TEST(MemoryAccounting, PeaksPerCategoryAndReset) {
  Storage::reset_peak_bytes();
  const int64_t workspace = live(MemoryCategory::workspace);
  EXPECT_EQ(Storage::peak_bytes(MemoryCategory::workspace), workspace);
  {
    MemoryCategoryGuard guard(MemoryCategory::workspace);
    Tensor big = Tensor::empty({1000});  // 4000 bytes, freed at once
    Tensor small = Tensor::empty({10});
  }
  EXPECT_EQ(Storage::peak_bytes(MemoryCategory::workspace) - workspace, 4040);
  EXPECT_GE(Storage::peak_bytes() - Storage::live_bytes(), 4040);
  EXPECT_GE(Storage::peak_cached_bytes(), 4000);
  Storage::reset_peak_bytes();
  EXPECT_EQ(Storage::peak_bytes(MemoryCategory::workspace), workspace);
  EXPECT_EQ(Storage::peak_bytes(), Storage::live_bytes());
  EXPECT_EQ(Storage::peak_cached_bytes(), Storage::cached_bytes());
}

TEST(MemoryAccounting, CategoryIsPerThread) {
  const int64_t activations = live(MemoryCategory::activations), other = live(MemoryCategory::other);
  MemoryCategoryGuard guard(MemoryCategory::activations);
  Tensor from_thread;
  std::thread worker([&] { from_thread = Tensor::empty({16}); });  // a fresh thread starts in `other`
  worker.join();
  EXPECT_EQ(from_thread.storage()->category(), MemoryCategory::other);
  EXPECT_EQ(live(MemoryCategory::other) - other, 64);
  EXPECT_EQ(live(MemoryCategory::activations), activations);
}

}  // namespace
}  // namespace frugal
