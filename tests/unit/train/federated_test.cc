// Federated averaging's pieces (train/parallel/federated_split.h, federated.h): the client splits,
// the Gamma draws behind Dirichlet, client sampling and the server's weighted average.
#include "frugal/train/parallel/federated.h"
#include "frugal/train/parallel/federated_split.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>

namespace frugal::train {
namespace {

// 10 classes of unequal size (600 + 20 c rows each), interleaved as a real data set is.
std::vector<int64_t> class_labels() {
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < 700; ++i)
    for (int64_t c = 0; c < 10; ++c)
      if (i < 600 + 20 * c) labels.push_back(c);
  return labels;
}

void expect_partition(const std::vector<std::vector<int64_t>>& shards, int64_t rows) {
  std::vector<int> seen(static_cast<size_t>(rows), 0);
  for (const auto& shard : shards) {
    EXPECT_FALSE(shard.empty());
    EXPECT_TRUE(std::is_sorted(shard.begin(), shard.end()));
    for (int64_t row : shard) {
      ASSERT_GE(row, 0);
      ASSERT_LT(row, rows);
      ++seen[size_t(row)];
    }
  }
  for (int64_t i = 0; i < rows; ++i) ASSERT_EQ(seen[size_t(i)], 1) << "row " << i << " in " << seen[size_t(i)] << " shards";
}

TEST(FederatedSplit, IidShardsCoverEveryRowOnceWithSizesWithinOne) {
  for (int64_t clients : {1, 3, 10, 1001}) {
    const auto shards = split_iid(1001, clients, 7);
    ASSERT_EQ(int64_t(shards.size()), clients);
    expect_partition(shards, 1001);
    size_t smallest = SIZE_MAX, largest = 0;
    for (const auto& s : shards) smallest = std::min(smallest, s.size()), largest = std::max(largest, s.size());
    EXPECT_LE(largest - smallest, 1u) << clients << " clients";
  }
  EXPECT_EQ(split_iid(1001, 10, 7), split_iid(1001, 10, 7));
  EXPECT_NE(split_iid(1001, 10, 7), split_iid(1001, 10, 8));
}

TEST(FederatedSplit, DirichletCoversEveryRowOnceAndIsDeterministic) {
  const std::vector<int64_t> labels = class_labels();
  const int64_t rows = int64_t(labels.size());
  for (double alpha : {0.01, 0.3, 100.0}) {
    const auto shards = split_dirichlet(labels, 10, 10, alpha, 1);
    ASSERT_EQ(shards.size(), 10u);
    expect_partition(shards, rows);
    EXPECT_EQ(shards, split_dirichlet(labels, 10, 10, alpha, 1)) << "alpha " << alpha;
    EXPECT_NE(shards, split_dirichlet(labels, 10, 10, alpha, 2)) << "alpha " << alpha;
  }
  // Many clients and a tiny alpha leave most clients without a draw: none stays empty.
  expect_partition(split_dirichlet(labels, 10, 500, 0.01, 3), rows);
}

TEST(FederatedSplit, SmallAlphaIsSkewedAndLargeAlphaIsNearIid) {
  const std::vector<int64_t> labels = class_labels();
  const int64_t rows = int64_t(labels.size());
  const double iid = label_skew(split_iid(rows, 10, 1), labels, 10);
  double skew[3];
  const double alphas[3] = {0.1, 0.3, 1000.0};
  for (int i = 0; i < 3; ++i) skew[i] = label_skew(split_dirichlet(labels, 10, 10, alphas[i], 1), labels, 10);
  std::printf("label skew (mean total variation from the global mix): iid %.3f, alpha 0.1 %.3f, 0.3 %.3f, 1000 %.3f\n",
              iid, skew[0], skew[1], skew[2]);
  EXPECT_LT(iid, 0.05);
  EXPECT_GT(skew[0], 0.5);   // most of a client's rows from a few classes
  EXPECT_GT(skew[1], 0.35);
  EXPECT_GT(skew[0], skew[1]);
  EXPECT_LT(skew[2], 0.05);  // Dirichlet(1000) over 10 clients: shares within a few percent of 1/10
}

TEST(FederatedSplit, GammaDrawsHaveMeanAndVarianceOfTheShape) {
  for (double shape : {0.05, 0.3, 1.0, 2.5, 40.0}) {
    Rng rng(11, 0, RandomPurpose::test);
    const int draws = 40000;
    double sum = 0, sum2 = 0;
    for (int i = 0; i < draws; ++i) {
      const double g = std::exp(log_gamma_draw(shape, rng));
      sum += g, sum2 += g * g;
    }
    const double mean = sum / draws, variance = sum2 / draws - mean * mean;
    // Gamma(a, 1): mean a and variance a; the mean's standard error is sqrt(a / draws).
    EXPECT_NEAR(mean, shape, 5 * std::sqrt(shape / draws)) << "shape " << shape;
    EXPECT_NEAR(variance / shape, 1.0, 0.1) << "shape " << shape;
  }
}

TEST(Federated, SampledClientsAreDistinctSortedAndKeyedByRound) {
  std::vector<int> count(10, 0);
  for (int64_t round = 0; round < 2000; ++round) {
    const auto sampled = sample_clients(10, 3, 5, round);
    ASSERT_EQ(sampled.size(), 3u);
    EXPECT_TRUE(std::is_sorted(sampled.begin(), sampled.end()));
    EXPECT_EQ(std::set<int64_t>(sampled.begin(), sampled.end()).size(), 3u);
    EXPECT_EQ(sampled, sample_clients(10, 3, 5, round));
    for (int64_t c : sampled) ++count[size_t(c)];
  }
  for (int c : count) EXPECT_NEAR(c, 600, 90);  // each client in 3 of 10 draws
  EXPECT_EQ(sample_clients(10, 10, 5, 3), (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_NE(sample_clients(10, 3, 5, 0), sample_clients(10, 3, 6, 0));
}

TEST(Federated, WeightedAverageIsTheShardWeightedMeanInTheGivenOrder) {
  const std::vector<float> a = {1.0f, -2.0f, 1e8f}, b = {3.0f, 2.0f, 1.0f}, c = {0.5f, 0.25f, -1e8f};
  const std::vector<float> out = weighted_average({a.data(), b.data(), c.data()}, {1, 2, 5}, 3);
  for (int j = 0; j < 3; ++j) {
    const double expected = double(a[j]) * (1.0 / 8) + double(b[j]) * (2.0 / 8) + double(c[j]) * (5.0 / 8);
    EXPECT_EQ(out[size_t(j)], float(expected)) << j;
  }
  EXPECT_FLOAT_EQ(out[0], (1.0f + 6.0f + 2.5f) / 8);
  // One model: itself, bit for bit.
  EXPECT_EQ(weighted_average({b.data()}, {7}, 3), b);
  // Equal weights and equal models: the model again.
  EXPECT_EQ(weighted_average({a.data(), a.data()}, {3, 3}, 3), a);
}

}  // namespace
}  // namespace frugal::train
