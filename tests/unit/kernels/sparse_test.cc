// The sparse linear kernel (cpu/sparse.h) against its scalar oracle (ref/sparse.h) and against the
// dense matmul: random densities from 0 to 100%, odd sizes, empty rows, batch 1 and batches that
// take each path (gather, 16-row and 64-row tiles), with and without bias, one and two threads.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "frugal/base/parallel.h"
#include "frugal/kernels/cpu/dense.h"
#include "frugal/kernels/cpu/sparse.h"
#include "frugal/kernels/ref/sparse.h"

namespace frugal {
namespace {
using kernels::SparseMatrix;

// w (rows, cols) with each entry kept with probability `density`, uniform in [-1, 1) otherwise 0.
std::vector<float> random_weight(int64_t rows, int64_t cols, double density, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  std::uniform_real_distribution<double> keep(0.0, 1.0);
  std::vector<float> w(size_t(rows * cols));
  for (float& v : w) v = keep(gen) < density ? value(gen) : 0.0f;
  return w;
}

std::vector<float> random_values(int64_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  std::vector<float> v{};
  v.resize(size_t(n));
  for (float& x : v) x = value(gen);
  return v;
}

// f32 sums of up to `in` products of values in [-1, 1] against double ones: 1e-5 * sqrt(in) abs.
double max_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(double(a[i]) - double(b[i])));
  return worst;
}

struct Case {
  int64_t n, in, out;
  double density;
};

TEST(SparseKernel, CompressionKeepsNonzerosInOrder) {
  const std::vector<float> w = {0, 2, 0, -0.0f, 0, 0, 3, 4};  // (2, 4): -0 is a zero too
  const SparseMatrix s = kernels::to_sparse(w.data(), 2, 4);
  ASSERT_EQ(s.row_start, (std::vector<int64_t>{0, 1, 3}));
  EXPECT_EQ(s.column, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(s.value, (std::vector<float>{2, 3, 4}));
  EXPECT_DOUBLE_EQ(s.density(), 3.0 / 8.0);
  EXPECT_EQ(kernels::count_zeros(w.data(), 8), 5);
}

TEST(SparseKernel, MatchesOracleAcrossDensitiesAndShapes) {
  const std::vector<Case> cases = {
      {1, 784, 256, 0.1},  {1, 7, 5, 1.0},      {2, 33, 17, 0.5},   {3, 128, 512, 0.05}, {4, 19, 3, 0.3},
      {15, 100, 31, 0.02}, {16, 256, 128, 0.2}, {17, 65, 66, 0.9},  {63, 31, 9, 0.0},    {64, 784, 256, 0.01},
      {65, 129, 257, 0.4}, {200, 256, 128, 1.0}, {1000, 37, 11, 0.15}, {5, 1, 1, 1.0},   {70, 3, 200, 0.25}};
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    uint32_t seed = 1;
    for (const Case& c : cases) {
      for (bool with_bias : {false, true}) {
        const std::vector<float> w = random_weight(c.out, c.in, c.density, seed++);
        const std::vector<float> x = random_values(c.n * c.in, seed++), bias = random_values(c.out, seed++);
        const SparseMatrix s = kernels::to_sparse(w.data(), c.out, c.in);
        std::vector<float> fast(size_t(c.n * c.out), NAN), oracle(size_t(c.n * c.out), NAN);
        kernels::cpu::sparse_linear(x.data(), c.n, s, with_bias ? bias.data() : nullptr, fast.data());
        kernels::ref::sparse_linear(x.data(), c.n, s, with_bias ? bias.data() : nullptr, oracle.data());
        const double tolerance = 2e-6 * std::sqrt(double(c.in) + 1);
        EXPECT_LE(max_difference(fast, oracle), tolerance)
            << "n " << c.n << " in " << c.in << " out " << c.out << " density " << c.density << " bias " << with_bias
            << " threads " << threads;
        // Against the dense product of the same weight (what the sparse path replaces).
        kernels::MatmulDims d;
        d.m = c.n, d.n = c.out, d.k = c.in, d.transpose_b = true, d.lda = c.in, d.ldb = c.in, d.ldc = c.out;
        std::vector<float> dense(size_t(c.n * c.out), NAN);
        kernels::cpu::matmul(x.data(), w.data(), with_bias ? bias.data() : nullptr, dense.data(), d);
        EXPECT_LE(max_difference(fast, dense), 2 * tolerance) << "against dense, n " << c.n << " in " << c.in;
      }
    }
  }
  set_num_threads(0);
}

TEST(SparseKernel, EmptyRowsGiveTheBias) {
  std::vector<float> w = random_weight(40, 50, 0.5, 7);
  for (int64_t c = 0; c < 50; ++c) w[size_t(3 * 50 + c)] = 0, w[size_t(39 * 50 + c)] = 0;  // rows 3 and 39 empty
  const SparseMatrix s = kernels::to_sparse(w.data(), 40, 50);
  const std::vector<float> bias = random_values(40, 8);
  for (int64_t n : {1, 5, 70}) {
    const std::vector<float> x = random_values(n * 50, 9);
    std::vector<float> y(size_t(n * 40));
    kernels::cpu::sparse_linear(x.data(), n, s, bias.data(), y.data());
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_EQ(y[size_t(i * 40 + 3)], bias[3]) << "n " << n;
      EXPECT_EQ(y[size_t(i * 40 + 39)], bias[39]) << "n " << n;
    }
  }
}

// Every path and thread count sums a row's nonzeros in stored order: the same bits whatever the
// batch splitting, so a row's output does not depend on the batch it came in.
TEST(SparseKernel, RowOutputIndependentOfBatchAndThreads) {
  const std::vector<float> w = random_weight(130, 77, 0.3, 11);
  const SparseMatrix s = kernels::to_sparse(w.data(), 130, 77);
  const std::vector<float> x = random_values(100 * 77, 12), bias = random_values(130, 13);
  set_num_threads(1);
  std::vector<float> one(130);
  kernels::cpu::sparse_linear(x.data() + 42 * 77, 1, s, bias.data(), one.data());
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (int64_t n : {2, 16, 50, 100}) {
      std::vector<float> y(size_t(n * 130));
      kernels::cpu::sparse_linear(x.data() + (42 - std::min<int64_t>(42, n - 1)) * 77, n, s, bias.data(), y.data());
      const int64_t row = std::min<int64_t>(42, n - 1);
      for (int64_t o = 0; o < 130; ++o) ASSERT_EQ(y[size_t(row * 130 + o)], one[size_t(o)]) << "n " << n << " o " << o;
    }
  }
  set_num_threads(0);
}

}  // namespace
}  // namespace frugal
