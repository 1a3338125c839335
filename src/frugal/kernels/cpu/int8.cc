// oneDNN's s8 x s8 -> s32 matmul writes the exact int32 sums into the output buffer itself (same
// width as f32), then one AVX-512 pass turns them into f32 in place with the scales, bias and ReLU,
// in ref/int8.h's order (oneDNN's own output scales round differently from one implementation to
// another, so the epilogue is ours). Quantization is AVX-512 with a
// scalar tail that computes the same values.
#include "frugal/kernels/cpu/int8.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include <dnnl.hpp>
#include <immintrin.h>

#include "frugal/base/error.h"
#include "frugal/base/parallel.h"
#include "frugal/kernels/cpu/onednn.h"

// GCC 12 warns about _mm512_undefined_* inside its own intrinsics wherever they are inlined (a
// known false positive).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace frugal {
namespace kernels {
namespace cpu {

namespace {
using dt = dnnl::memory::data_type;
using md = dnnl::memory::desc;
using dnnl_dims = dnnl::memory::dims;

struct Int8MatmulEntry {
  dnnl::matmul primitive;
  md a, b, c;
};

thread_local std::unordered_map<PrimitiveKey, Int8MatmulEntry, PrimitiveKeyHash> t_cache;
thread_local int64_t t_created = 0;

md matrix(int64_t rows, int64_t cols, bool transposed, int64_t ld, dt type) {
  return md({rows, cols}, type, transposed ? dnnl_dims{1, ld} : dnnl_dims{ld, 1});
}

Int8MatmulEntry& entry_for(const MatmulDims& d) {
  PrimitiveKey key;
  for (int64_t v : {d.m, d.n, d.k, int64_t(d.transpose_a), int64_t(d.transpose_b), d.lda, d.ldb, d.ldc,
                    int64_t(num_threads())})
    key.add(v);
  auto it = t_cache.find(key);
  if (it != t_cache.end()) return it->second;
  Int8MatmulEntry e;
  e.a = matrix(d.m, d.k, d.transpose_a, d.lda, dt::s8);
  e.b = matrix(d.k, d.n, d.transpose_b, d.ldb, dt::s8);
  e.c = matrix(d.m, d.n, false, d.ldc, dt::s32);
  e.primitive = dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(e.a, e.b, e.c), onednn_engine()));
  ++t_created;
  return t_cache.emplace(key, std::move(e)).first->second;
}

// c(i, :) = fma(float(acc(i, :)) * col_scale, row_scale[i], bias), then ReLU, in place over the int32
// sums (acc and c share each element's 4 bytes); ref::matmul_s8's operations in its order.
void epilogue_rows(void* out, const MatmulDims& d, const Int8Epilogue& e) {
  parallel_for(d.m, std::max<int64_t>(1, 16384 / std::max<int64_t>(d.n, 1)), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      float* row = static_cast<float*>(out) + i * d.ldc;
      const int32_t* acc = static_cast<const int32_t*>(out) + i * d.ldc;
      const float r = e.row_scale ? e.row_scale[i] : 1.0f;
      int64_t j = 0;
#ifdef __AVX512F__
      const __m512 vr = _mm512_set1_ps(r), zero = _mm512_setzero_ps(), vcol = _mm512_set1_ps(e.col_scale[0]);
      for (; j + 16 <= d.n; j += 16) {
        __m512 v = _mm512_cvtepi32_ps(_mm512_loadu_si512(acc + j));
        v = _mm512_mul_ps(v, e.per_column ? _mm512_loadu_ps(e.col_scale + j) : vcol);
        v = _mm512_fmadd_ps(v, vr, e.bias ? _mm512_loadu_ps(e.bias + j) : zero);
        if (e.relu) v = _mm512_max_ps(v, zero);
        _mm512_storeu_ps(row + j, v);
      }
#endif
      for (; j < d.n; ++j) {
        const float scaled = float(acc[j]) * e.col_scale[e.per_column ? j : 0];
        float v = std::fma(scaled, r, e.bias ? e.bias[j] : 0.0f);
        if (e.relu) v = std::max(v, 0.0f);
        row[j] = v;
      }
    }
  });
}

void quantize_span(const float* x, int64_t n, float inv, int8_t* q) {
  int64_t i = 0;
#ifdef __AVX512F__
  const __m512 vinv = _mm512_set1_ps(inv), lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
  for (; i + 16 <= n; i += 16) {
    __m512 v = _mm512_mul_ps(_mm512_loadu_ps(x + i), vinv);
    v = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i), _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(v)));
  }
#endif
  for (; i < n; ++i) q[i] = quantize_one_s8(x[i], inv);
}

float absmax_of(const float* x, int64_t n) {
  int64_t i = 0;
  float m = 0.0f;
#ifdef __AVX512F__
  __m512 vm = _mm512_setzero_ps();
  for (; i + 16 <= n; i += 16) vm = _mm512_max_ps(vm, _mm512_abs_ps(_mm512_loadu_ps(x + i)));
  m = _mm512_reduce_max_ps(vm);
#endif
  for (; i < n; ++i) m = std::max(m, std::fabs(x[i]));
  return m;
}
}  // namespace

void matmul_s8(const int8_t* a, const int8_t* b, float* c, const MatmulDims& d, const Int8Epilogue& e) {
  FRUGAL_CHECK(d.batch == 1, "matmul_s8: batch must be 1");
  FRUGAL_CHECK(e.col_scale != nullptr, "matmul_s8: no column scale");
  FRUGAL_CHECK(d.k < 133000, "matmul_s8: k too large for exact int32 sums");
  if (d.m == 0 || d.n == 0) return;
  if (d.k == 0) {  // an empty sum: acc = 0 (the bits of int32 0 and of 0.0f are the same)
    for (int64_t i = 0; i < d.m; ++i) std::fill(c + i * d.ldc, c + i * d.ldc + d.n, 0.0f);
  } else {
    Int8MatmulEntry& entry = entry_for(d);
    dnnl::engine& engine = onednn_engine();
    auto wrap = [&](const md& desc, const void* p) { return dnnl::memory(desc, engine, const_cast<void*>(p)); };
    entry.primitive.execute(onednn_stream(), {{DNNL_ARG_SRC, wrap(entry.a, a)},
                                              {DNNL_ARG_WEIGHTS, wrap(entry.b, b)},
                                              {DNNL_ARG_DST, wrap(entry.c, c)}});
    onednn_stream().wait();
  }
  epilogue_rows(c, d, e);
}

void quantize_s8(const float* x, int64_t n, float scale, int8_t* q) {
  const float inv = 1.0f / scale;
  parallel_for(n, 65536, [&](int64_t begin, int64_t end) { quantize_span(x + begin, end - begin, inv, q + begin); });
}

void quantize_rows_s8(const float* x, int64_t rows, int64_t cols, int64_t ldx, int8_t* q, float* scales) {
  parallel_for(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1)), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      scales[i] = int8_scale(absmax_of(x + i * ldx, cols));
      quantize_span(x + i * ldx, cols, 1.0f / scales[i], q + i * cols);
    }
  });
}

int64_t int8_primitives_created() { return t_created; }

}  // namespace cpu
}  // namespace kernels
}  // namespace frugal
