// The int8 kernels against their scalar oracle, bit for bit: quantization (ties to even, saturation,
// zero rows) and the s8 matmul (transposes, padded leading dimensions, every epilogue), and the
// quantized product against the f32 one within the bound its rounding allows.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "frugal/base/parallel.h"
#include "frugal/kernels/cpu/int8.h"
#include "frugal/kernels/ref/int8.h"

namespace frugal {
namespace {
using kernels::Int8Epilogue;
using kernels::MatmulDims;

std::vector<float> uniform(int64_t n, float lo, float hi, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(gen);
  return v;
}

std::vector<int8_t> codes(int64_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> dist(-127, 127);
  std::vector<int8_t> v(static_cast<size_t>(n));
  for (int8_t& x : v) x = int8_t(dist(gen));
  return v;
}

TEST(Int8Quantize, TiesToEvenSaturationAndZeroRows) {
  // scale 1: x * 1 exactly, so the ties are real ties
  const std::vector<float> x = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, 126.5f, 127.4f, 200.0f, -200.0f, -127.6f, 0.49999997f};
  const std::vector<int8_t> want = {0, 2, 2, 0, -2, 126, 127, 127, -127, -127, 0};
  std::vector<int8_t> q(x.size()), r(x.size());
  kernels::cpu::quantize_s8(x.data(), int64_t(x.size()), 1.0f, q.data());
  kernels::ref::quantize_s8(x.data(), int64_t(x.size()), 1.0f, r.data());
  EXPECT_EQ(q, want);
  EXPECT_EQ(r, want);

  const int64_t rows = 5, cols = 37, ld = 40;
  std::vector<float> m = uniform(rows * ld, -3, 3, 7);
  for (int64_t j = 0; j < cols; ++j) m[size_t(2 * ld + j)] = 0.0f;  // a row of zeros: scale 1, codes 0
  std::vector<int8_t> qc(size_t(rows * cols)), qr(size_t(rows * cols));
  std::vector<float> sc(rows), sr(rows);
  kernels::cpu::quantize_rows_s8(m.data(), rows, cols, ld, qc.data(), sc.data());
  kernels::ref::quantize_rows_s8(m.data(), rows, cols, ld, qr.data(), sr.data());
  EXPECT_EQ(qc, qr);
  EXPECT_EQ(sc, sr);
  EXPECT_EQ(sc[2], 1.0f);
  for (int64_t i = 0; i < rows; ++i) {
    int max_code = 0;
    for (int64_t j = 0; j < cols; ++j) {
      max_code = std::max(max_code, std::abs(int(qc[size_t(i * cols + j)])));
      // dequantized within half a step of the value
      EXPECT_LE(std::fabs(float(qc[size_t(i * cols + j)]) * sc[size_t(i)] - m[size_t(i * ld + j)]),
                0.5f * sc[size_t(i)] * (1 + 1e-6f));
    }
    if (i != 2) {
      EXPECT_EQ(max_code, 127) << "row " << i;  // the largest magnitude maps to 127
    }
  }
}

TEST(Int8Quantize, LongSpansMatchTheOracle) {
  for (int64_t n : {1, 15, 16, 17, 1000, 200003}) {
    std::vector<float> x = uniform(n, -10, 10, uint32_t(n));
    std::vector<int8_t> q(static_cast<size_t>(n)), r(static_cast<size_t>(n));
    kernels::cpu::quantize_s8(x.data(), n, 0.03f, q.data());
    kernels::ref::quantize_s8(x.data(), n, 0.03f, r.data());
    EXPECT_EQ(q, r) << n;
  }
}

struct Case {
  int64_t m, n, k;
  bool ta, tb;
  int64_t pad;
  bool rows, per_column, bias, relu;
};

TEST(Int8Matmul, BitIdenticalToTheOracle) {
  const std::vector<Case> cases = {
      {1, 1, 1, false, false, 0, false, false, false, false},
      {7, 5, 3, false, true, 0, true, true, true, true},
      {128, 256, 784, false, true, 0, true, false, true, false},  // the MLP's first layer, forward
      {128, 784, 256, false, false, 0, true, false, false, false},  // its input gradient
      {33, 65, 129, true, false, 3, false, true, true, true},
      {64, 384, 128, false, true, 5, true, true, false, true},
      {17, 10, 0, false, false, 0, true, false, true, true},  // empty sum
  };
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (const Case& t : cases) {
      MatmulDims d;
      d.m = t.m, d.n = t.n, d.k = t.k, d.transpose_a = t.ta, d.transpose_b = t.tb;
      d.lda = (t.ta ? t.m : t.k) + t.pad, d.ldb = (t.tb ? t.k : t.n) + t.pad, d.ldc = t.n + t.pad;
      const int64_t a_rows = t.ta ? t.k : t.m, b_rows = t.tb ? t.n : t.k;
      std::vector<int8_t> a = codes(a_rows * d.lda, 1), b = codes(b_rows * d.ldb, 2);
      std::vector<float> rows = uniform(t.m, 0.001f, 0.1f, 3), cols = uniform(t.n, 0.001f, 0.1f, 4),
                         bias = uniform(t.n, -50, 50, 5);
      Int8Epilogue e;
      e.row_scale = t.rows ? rows.data() : nullptr;
      e.col_scale = cols.data();
      e.per_column = t.per_column;
      e.bias = t.bias ? bias.data() : nullptr;
      e.relu = t.relu;
      std::vector<float> c(size_t(t.m * d.ldc), -7.0f), r(size_t(t.m * d.ldc), -7.0f);
      kernels::cpu::matmul_s8(a.data(), b.data(), c.data(), d, e);
      kernels::ref::matmul_s8(a.data(), b.data(), r.data(), d, e);
      for (int64_t i = 0; i < t.m; ++i)
        for (int64_t j = 0; j < d.ldc; ++j) {
          const size_t at = size_t(i * d.ldc + j);
          if (j >= t.n) {
            EXPECT_EQ(c[at], -7.0f) << "padding written";
            continue;
          }
          ASSERT_EQ(std::memcmp(&c[at], &r[at], sizeof(float)), 0)
              << "m " << t.m << " n " << t.n << " k " << t.k << " at " << i << "," << j << ": " << c[at] << " vs " << r[at];
        }
    }
  }
  set_num_threads(0);
}

// x W^T with x quantized per row and W per tensor (SwitchBack's forward) against the f32 product:
// each term's error is below |x||dW| + |W||dx| + |dx||dW| with half-step errors dx, dW.
TEST(Int8Matmul, QuantizedProductWithinTheRoundingBound) {
  const int64_t m = 32, n = 48, k = 300;
  std::vector<float> x = uniform(m * k, -2, 2, 11), w = uniform(n * k, -0.1f, 0.1f, 12);
  std::vector<int8_t> qx(size_t(m * k)), qw(size_t(n * k));
  std::vector<float> sx(m);
  kernels::cpu::quantize_rows_s8(x.data(), m, k, k, qx.data(), sx.data());
  float absw = 0;
  for (float v : w) absw = std::max(absw, std::fabs(v));
  const float sw = kernels::int8_scale(absw);
  kernels::cpu::quantize_s8(w.data(), n * k, sw, qw.data());
  MatmulDims d;
  d.m = m, d.n = n, d.k = k, d.transpose_b = true, d.lda = k, d.ldb = k, d.ldc = n;
  Int8Epilogue e;
  e.row_scale = sx.data();
  e.col_scale = &sw;
  std::vector<float> c(size_t(m * n));
  kernels::cpu::matmul_s8(qx.data(), qw.data(), c.data(), d, e);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double exact = 0, bound = 0;
      const double ex = sx[size_t(i)] / 2, ew = sw / 2;
      for (int64_t p = 0; p < k; ++p) {
        const double xv = x[size_t(i * k + p)], wv = w[size_t(j * k + p)];
        exact += xv * wv;
        bound += std::fabs(xv) * ew + std::fabs(wv) * ex + ex * ew;
      }
      EXPECT_LE(std::fabs(c[size_t(i * n + j)] - exact), bound * 1.001 + 1e-6) << i << "," << j;
    }
}

}  // namespace
}  // namespace frugal
