#include "frugal/cost/peak.h"

#include <omp.h>

#include <algorithm>
#include <chrono>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace frugal::cost {

namespace {

// 12 independent accumulators cover the FMA latency (4 cycles) times its issue rate on current
// cores; the loop body has no loads, so it measures the arithmetic units alone.
constexpr int kAccumulators = 12;

double fp32_loop(int64_t iterations) {
#if defined(__AVX512F__)
  __m512 acc[kAccumulators];
  for (int i = 0; i < kAccumulators; ++i) acc[i] = _mm512_set1_ps(float(i) * 1e-3f);
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int64_t it = 0; it < iterations; ++it)
    for (int i = 0; i < kAccumulators; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  __m512 sum = acc[0];
  for (int i = 1; i < kAccumulators; ++i) sum = _mm512_add_ps(sum, acc[i]);
  volatile float sink = _mm512_reduce_add_ps(sum);
  (void)sink;
  return double(iterations) * kAccumulators * 16 * 2;
#else
  float acc[kAccumulators][16];
  for (int i = 0; i < kAccumulators; ++i)
    for (int l = 0; l < 16; ++l) acc[i][l] = float(i) * 1e-3f;
  for (int64_t it = 0; it < iterations; ++it)
    for (int i = 0; i < kAccumulators; ++i)
      for (int l = 0; l < 16; ++l) acc[i][l] = acc[i][l] * 0.999999f + 1e-7f;
  float total = 0;
  for (int i = 0; i < kAccumulators; ++i)
    for (int l = 0; l < 16; ++l) total += acc[i][l];
  volatile float sink = total;
  (void)sink;
  return double(iterations) * kAccumulators * 16 * 2;
#endif
}

double bf16_loop(int64_t iterations) {
#if defined(__AVX512BF16__)
  __m512 acc[kAccumulators];
  for (int i = 0; i < kAccumulators; ++i) acc[i] = _mm512_setzero_ps();
  const __m512bh a = (__m512bh)_mm512_set1_epi16(0x3F80), b = (__m512bh)_mm512_set1_epi16(0x3400);  // 1.0, ~1e-7
  for (int64_t it = 0; it < iterations; ++it)
    for (int i = 0; i < kAccumulators; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
  __m512 sum = acc[0];
  for (int i = 1; i < kAccumulators; ++i) sum = _mm512_add_ps(sum, acc[i]);
  volatile float sink = _mm512_reduce_add_ps(sum);
  (void)sink;
  return double(iterations) * kAccumulators * 32 * 2;  // 32 bf16 products per instruction
#else
  (void)iterations;
  return 0;
#endif
}

// FLOP/s of `loop` on `threads` threads, best of 5 runs of about `seconds` each: on a shared
// machine a run can lose a core for a while (3 runs once measured half the peak).
template <class Loop>
double rate(Loop loop, int threads, double seconds) {
  // Calibrate the iteration count on one thread, then run it everywhere at once.
  int64_t iterations = 1 << 16;
  for (;;) {
    auto start = std::chrono::steady_clock::now();
    loop(iterations);
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (elapsed > seconds / 4 || iterations > (int64_t(1) << 40)) {
      iterations = int64_t(double(iterations) * seconds / std::max(elapsed, 1e-9));
      break;
    }
    iterations *= 4;
  }
  double best = 0;
  for (int repeat = 0; repeat < 5; ++repeat) {
    double flops = 0;
    auto start = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads) reduction(+ : flops)
    flops += loop(iterations);
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, flops / elapsed);
  }
  return best;
}

}  // namespace

PeakFlops measure_peak_flops(int threads, double seconds) {
  PeakFlops peak;
  peak.threads = std::max(1, threads);
  peak.fp32 = rate(fp32_loop, peak.threads, seconds);
  double bf16 = bf16_loop(1);
  peak.bf16 = bf16 > 0 ? rate(bf16_loop, peak.threads, seconds) : 0;
  return peak;
}

}  // namespace frugal::cost
