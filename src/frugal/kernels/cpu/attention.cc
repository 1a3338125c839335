// Head moves and the row-wise softmax of materialized attention: memory-bound loops, threaded over
// rows with fixed static chunks and written so the compiler vectorizes them (no calls, no branches
// in the inner loops).
#include "frugal/kernels/cpu/attention.h"

#include <cstring>

#include "frugal/base/parallel.h"
#include "frugal/kernels/cpu/activation.h"
#include "frugal/kernels/cpu/convert.h"

namespace frugal {
namespace kernels {
namespace cpu {

namespace {
constexpr int64_t kGrainElements = 32768;

constexpr int kLanes = 16;

int64_t grain_rows(int64_t cols) { return std::max<int64_t>(1, kGrainElements / std::max<int64_t>(cols, 1)); }

// Reductions in kLanes interleaved partial results (a fixed order: vectorizable without fast-math).
inline float lanes_max(const float* x, int64_t n) {
  float lanes[kLanes];
  for (int l = 0; l < kLanes; ++l) lanes[l] = x[0];
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) lanes[l] = fast::max_f(lanes[l], x[j + l]);
  float m = lanes[0];
  for (int l = 1; l < kLanes; ++l) m = fast::max_f(m, lanes[l]);
  for (; j < n; ++j) m = fast::max_f(m, x[j]);
  return m;
}

inline float lanes_dot(const float* x, const float* y, int64_t n) {
  float lanes[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) lanes[l] += x[j + l] * y[j + l];
  float total = 0.0f;
  for (int l = 0; l < kLanes; ++l) total += lanes[l];
  for (; j < n; ++j) total += x[j] * y[j];
  return total;
}

inline float lanes_sum(const float* x, int64_t n) {
  float lanes[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) lanes[l] += x[j + l];
  float total = 0.0f;
  for (int l = 0; l < kLanes; ++l) total += lanes[l];
  for (; j < n; ++j) total += x[j];
  return total;
}

inline void store_row(const float* src, float* dst, int64_t n) { std::memcpy(dst, src, size_t(n) * sizeof(float)); }
inline void store_row(const float* src, bf16_t* dst, int64_t n) { f32_to_bf16_serial(src, dst, n); }

template <class Out>
void split_heads_impl(const float* x, int64_t row_width, int64_t col_offset, Out* y, int64_t B, int64_t T, int64_t H,
                      int64_t D) {
  // One task per (b, t) source row: it feeds row t of every head of batch b.
  parallel_for(B * T, grain_rows(H * D), [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      const int64_t b = row / T, t = row % T;
      const float* src = x + row * row_width + col_offset;  // (H*D)
      for (int64_t h = 0; h < H; ++h) store_row(src + h * D, y + ((b * H + h) * T + t) * D, D);
    }
  });
}
}  // namespace

void split_heads(const float* x, int64_t row_width, int64_t col_offset, float* y, int64_t B, int64_t T, int64_t H,
                 int64_t D) {
  split_heads_impl(x, row_width, col_offset, y, B, T, H, D);
}

void split_heads(const float* x, int64_t row_width, int64_t col_offset, bf16_t* y, int64_t B, int64_t T, int64_t H,
                 int64_t D) {
  split_heads_impl(x, row_width, col_offset, y, B, T, H, D);
}

void merge_heads(const float* x, float* y, int64_t row_width, int64_t col_offset, int64_t B, int64_t T, int64_t H,
                 int64_t D) {
  parallel_for(B * T, grain_rows(H * D), [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      const int64_t b = row / T, t = row % T;
      float* dst = y + row * row_width + col_offset;  // (H*D)
      for (int64_t h = 0; h < H; ++h) store_row(x + ((b * H + h) * T + t) * D, dst + h * D, D);
    }
  });
}

// The parallel bodies copy their scalars into locals: a float captured by reference could alias
// the rows being written, which keeps GCC from vectorizing the loops.
void softmax_rows(float* s, int64_t BH, int64_t Tq, int64_t Tk, float scale_in, bool causal, bf16_t* p16) {
  parallel_for(BH * Tq, grain_rows(Tk), [=](int64_t r0, int64_t r1) {
    const float scale = scale_in;
    for (int64_t row = r0; row < r1; ++row) {
      float* p = s + row * Tk;  // (Tk)
      const int64_t i = row % Tq;
      const int64_t visible = causal ? std::min(Tk, i + 1) : Tk;
      const float shift = lanes_max(p, visible) * scale;
      for (int64_t j = 0; j < visible; ++j) p[j] = fast::exp(p[j] * scale - shift);
      const float inv = 1.0f / lanes_sum(p, visible);
      for (int64_t j = 0; j < visible; ++j) p[j] *= inv;
      for (int64_t j = visible; j < Tk; ++j) p[j] = 0.0f;
      if (p16) f32_to_bf16_serial(p, p16 + row * Tk, Tk);
    }
  });
}

void softmax_rows_backward(const float* p, float* dp, int64_t rows, int64_t Tk, float scale_in, bf16_t* ds16) {
  parallel_for(rows, grain_rows(Tk), [=](int64_t r0, int64_t r1) {
    const float scale = scale_in;
    for (int64_t row = r0; row < r1; ++row) {
      const float* pr = p + row * Tk;  // (Tk)
      float* g = dp + row * Tk;        // (Tk)
      const float dot = lanes_dot(pr, g, Tk);
      for (int64_t j = 0; j < Tk; ++j) g[j] = scale * pr[j] * (g[j] - dot);
      if (ds16) f32_to_bf16_serial(g, ds16 + row * Tk, Tk);
    }
  });
}

}  // namespace cpu
}  // namespace kernels
}  // namespace frugal
