// f32 -> bf16 rounding in AVX-512 integer arithmetic (u + 0x7FFF + lsb, NaNs made quiet), with
// the scalar float_to_bf16 for tails and for builds without AVX-512.
#include "frugal/kernels/cpu/convert.h"

#include "frugal/base/parallel.h"

namespace frugal {
namespace kernels {
namespace cpu {

namespace {
constexpr int64_t kGrain = 32768;  // elements per thread chunk; conversion is memory bound

void convert_range(const float* x, bf16_t* y, int64_t begin, int64_t end) {
  int64_t i = begin;
#if defined(__AVX512F__) && defined(__AVX512BW__)
  for (; i + 16 <= end; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), round_to_bf16x16(_mm512_loadu_ps(x + i)));
#endif
  for (; i < end; ++i) y[i] = float_to_bf16(x[i]);
}
void round_values_range(const float* x, float* y, int64_t begin, int64_t end) {
  int64_t i = begin;
#if defined(__AVX512F__) && defined(__AVX512BW__)
  const __mmask16 all = 0xFFFF;
  for (; i + 16 <= end; i += 16) {
    const __m512i bits = _mm512_maskz_cvtepu16_epi32(all, round_to_bf16x16(_mm512_loadu_ps(x + i)));
    _mm512_storeu_ps(y + i, _mm512_castsi512_ps(_mm512_maskz_slli_epi32(all, bits, 16)));
  }
#endif
  for (; i < end; ++i) y[i] = bf16_to_float(float_to_bf16(x[i]));
}
}  // namespace

void round_to_bf16_values(const float* x, float* y, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t begin, int64_t end) { round_values_range(x, y, begin, end); });
}

void f32_to_bf16_serial(const float* x, bf16_t* y, int64_t n) { convert_range(x, y, 0, n); }

void f32_to_bf16(const float* x, bf16_t* y, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t begin, int64_t end) { convert_range(x, y, begin, end); });
}

}  // namespace cpu
}  // namespace kernels
}  // namespace frugal
