#include "frugal/kernels/cpu/elementwise.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <immintrin.h>

#include "frugal/base/parallel.h"

namespace frugal {
namespace kernels {
namespace cpu {

namespace {
constexpr int64_t kGrain = 16384;  // elements per thread chunk below which one thread is faster

template <BinaryOp Op>
void binary_contiguous(const float* a, const float* b, float* out, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) out[i] = apply_binary<float>(Op, a[i], b[i]);
  });
}

// a (rows, cols) contiguous, b broadcast along rows: b[j] (row_b) or b[i] (col_b).
template <BinaryOp Op, bool kBRow>
void binary_rows(const float* a, const float* b, float* out, int64_t rows, int64_t cols, bool swap) {
  parallel_for(rows, std::max<int64_t>(1, kGrain / std::max<int64_t>(cols, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* ar = a + r * cols;
      float* o = out + r * cols;
      if constexpr (kBRow) {
        if (swap) for (int64_t j = 0; j < cols; ++j) o[j] = apply_binary<float>(Op, b[j], ar[j]);
        else for (int64_t j = 0; j < cols; ++j) o[j] = apply_binary<float>(Op, ar[j], b[j]);
      } else {
        float br = b[r];
        if (swap) for (int64_t j = 0; j < cols; ++j) o[j] = apply_binary<float>(Op, br, ar[j]);
        else for (int64_t j = 0; j < cols; ++j) o[j] = apply_binary<float>(Op, ar[j], br);
      }
    }
  });
}

bool is_packed(const Strides& strides, const Shape& shape) { return strides == contiguous_strides(shape); }

// True when `strides` reads a tensor of shape `shape` as a packed block of the last `tail` axes
// repeated over the leading axes (stride 0 there): a row-vector broadcast.
bool is_row_broadcast(const Strides& strides, const Shape& shape, size_t tail) {
  size_t lead = shape.size() - tail;
  for (size_t i = 0; i < lead; ++i) if (strides[i] != 0 && shape[i] != 1) return false;
  int64_t expected = 1;
  for (size_t i = shape.size(); i-- > lead;) {
    if (shape[i] != 1 && strides[i] != expected) return false;
    expected *= shape[i];
  }
  return true;
}

template <BinaryOp Op>
void binary_dispatch(const float* a, const Strides& as, const float* b, const Strides& bs, float* out,
                     const Shape& shape) {
  const int64_t n = shape_numel(shape);
  const bool a_packed = is_packed(as, shape), b_packed = is_packed(bs, shape);
  if (a_packed && b_packed) return binary_contiguous<Op>(a, b, out, n);
  // One packed operand and the other broadcast over leading axes (bias add, scaling by a row).
  for (int pass = 0; pass < 2; ++pass) {
    const bool swap = pass == 1;
    const float* x = swap ? b : a;
    const float* y = swap ? a : b;
    const Strides& xs = swap ? bs : as;
    const Strides& ys = swap ? as : bs;
    if (!is_packed(xs, shape)) continue;
    for (size_t tail = 1; tail <= shape.size(); ++tail) {
      if (!is_row_broadcast(ys, shape, tail)) continue;
      int64_t cols = 1;
      for (size_t i = shape.size() - tail; i < shape.size(); ++i) cols *= shape[i];
      return binary_rows<Op, true>(x, y, out, n / std::max<int64_t>(cols, 1), cols, swap);
    }
    // Column broadcast: y varies along leading axes only, constant over the last axis.
    if (shape.size() >= 2 && ys.back() == 0) {
      Shape lead_shape(shape.begin(), shape.end() - 1);
      Strides lead_strides(ys.begin(), ys.end() - 1);
      if (is_packed(lead_strides, lead_shape))
        return binary_rows<Op, false>(x, y, out, n / shape.back(), shape.back(), swap);
    }
  }
  ref::binary<float>(Op, a, as, b, bs, out, shape);  // general strided case
}
}  // namespace

void binary(BinaryOp op, const float* a, const Strides& as, const float* b, const Strides& bs, float* out,
            const Shape& shape) {
  switch (op) {
    case BinaryOp::add: return binary_dispatch<BinaryOp::add>(a, as, b, bs, out, shape);
    case BinaryOp::sub: return binary_dispatch<BinaryOp::sub>(a, as, b, bs, out, shape);
    case BinaryOp::mul: return binary_dispatch<BinaryOp::mul>(a, as, b, bs, out, shape);
    case BinaryOp::div: return binary_dispatch<BinaryOp::div>(a, as, b, bs, out, shape);
  }
}

void scale_shift(const float* x, float* out, int64_t n, double scale, double shift) {
  const float s = float(scale), t = float(shift);
  parallel_for(n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) out[i] = x[i] * s + t;
  });
}

void sum_middle(const float* x, float* out, int64_t outer, int64_t reduce, int64_t inner) {
  if (inner == 1) {
    // Reduce contiguous rows: 16 f32 lanes per row, lanes combined in double.
    parallel_for(outer, std::max<int64_t>(1, kGrain / std::max<int64_t>(reduce, 1)), [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; ++o) {
        const float* row = x + o * reduce;
        float lanes[16] = {};
        int64_t r = 0;
        for (; r + 16 <= reduce; r += 16)
          for (int l = 0; l < 16; ++l) lanes[l] += row[r + l];
        double total = 0;
        for (int l = 0; l < 16; ++l) total += lanes[l];
        for (; r < reduce; ++r) total += row[r];
        out[o] = float(total);
      }
    });
    return;
  }
  // Reduce over a strided axis: accumulate whole inner rows (vectorized over inner) in f32.
  parallel_for(outer * inner, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t idx = begin; idx < end;) {
      int64_t o = idx / inner, i0 = idx % inner;
      int64_t i1 = std::min(inner, i0 + (end - idx));
      float* dst = out + o * inner;
      for (int64_t i = i0; i < i1; ++i) dst[i] = 0.0f;
      for (int64_t r = 0; r < reduce; ++r) {
        const float* src = x + (o * reduce + r) * inner;
        for (int64_t i = i0; i < i1; ++i) dst[i] += src[i];
      }
      idx += i1 - i0;
    }
  });
}

void max_middle(const float* x, float* out, int64_t* argmax, int64_t outer, int64_t reduce, int64_t inner) {
  if (inner == 1) {
    // Contiguous rows: the maximum in 16 lanes, then the first position holding it.
    parallel_for(outer, std::max<int64_t>(1, kGrain / std::max<int64_t>(reduce, 1)), [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; ++o) {
        const float* row = x + o * reduce;
        float lanes[16];
        bool nan = false;
        for (int l = 0; l < 16; ++l) lanes[l] = row[0];
        int64_t r = 0;
        for (; r + 16 <= reduce; r += 16)
          for (int l = 0; l < 16; ++l) lanes[l] = row[r + l] > lanes[l] ? row[r + l] : lanes[l];
        float best = lanes[0];
        for (int l = 1; l < 16; ++l) best = lanes[l] > best ? lanes[l] : best;
        for (; r < reduce; ++r) best = row[r] > best ? row[r] : best;
        for (int64_t k = 0; k < reduce; ++k) nan |= row[k] != row[k];
        int64_t index = 0;
        if (nan) {
          while (row[index] == row[index]) ++index;  // a NaN is the maximum, as in the reference
        } else {
          while (row[index] != best) ++index;
        }
        out[o] = row[index];
        argmax[o] = index;
      }
    });
    return;
  }
  // Strided axis: compare whole inner rows, vectorized over inner.
  parallel_for(outer * inner, std::max<int64_t>(1, kGrain / std::max<int64_t>(reduce, 1)), [&](int64_t begin, int64_t end) {
    for (int64_t idx = begin; idx < end;) {
      const int64_t o = idx / inner, i0 = idx % inner;
      const int64_t i1 = std::min(inner, i0 + (end - idx));
      float* best = out + o * inner;
      int64_t* best_index = argmax + o * inner;
      const float* base = x + o * reduce * inner;
      for (int64_t i = i0; i < i1; ++i) best[i] = base[i], best_index[i] = 0;
      for (int64_t r = 1; r < reduce; ++r) {
        const float* src = base + r * inner;
        for (int64_t i = i0; i < i1; ++i) {
          const bool take = src[i] > best[i] || (src[i] != src[i] && best[i] == best[i]);
          best[i] = take ? src[i] : best[i];
          best_index[i] = take ? r : best_index[i];
        }
      }
      idx += i1 - i0;
    }
  });
}

namespace {
// Philox4x32-10 (the arithmetic of base/rng.cc's philox4x32) on 16 consecutive counter blocks at
// once: words[4 * i + w] is word w of block first_block + i, the draws of 64 consecutive elements.
// With AVX-512 the 16 blocks sit in the 16 lanes of a register (the compiler does not vectorize
// the 32x32->64 multiplies by itself); otherwise it is the scalar function per block.
// GCC 12 warns about _mm512_undefined_epi32 inside its own intrinsics (a known false positive).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
void philox_x16(uint64_t first_block, uint64_t stream, uint64_t key, uint32_t words[64]) {
#ifdef __AVX512F__
  alignas(64) uint32_t c[2][16];
  for (int i = 0; i < 16; ++i) {
    const uint64_t block = first_block + uint64_t(i);
    c[0][i] = uint32_t(block);
    c[1][i] = uint32_t(block >> 32);
  }
  __m512i c0 = _mm512_load_si512(c[0]), c1 = _mm512_load_si512(c[1]);
  __m512i c2 = _mm512_set1_epi32(int(uint32_t(stream))), c3 = _mm512_set1_epi32(int(uint32_t(stream >> 32)));
  const __m512i mul0 = _mm512_set1_epi64(0xD2511F53), mul1 = _mm512_set1_epi64(0xCD9E8D57);
  const __mmask16 odd = 0xAAAA;
  uint32_t k0 = uint32_t(key), k1 = uint32_t(key >> 32);
  for (int round = 0; round < 10; ++round) {
    // 32x32->64 products of the even lanes and (shifted down) of the odd lanes, then the low and
    // high halves regathered into 16 lanes.
    const __m512i even0 = _mm512_mul_epu32(c0, mul0), odd0 = _mm512_mul_epu32(_mm512_srli_epi64(c0, 32), mul0);
    const __m512i even1 = _mm512_mul_epu32(c2, mul1), odd1 = _mm512_mul_epu32(_mm512_srli_epi64(c2, 32), mul1);
    const __m512i lo0 = _mm512_mask_blend_epi32(odd, even0, _mm512_slli_epi64(odd0, 32));
    const __m512i hi0 = _mm512_mask_blend_epi32(odd, _mm512_srli_epi64(even0, 32), odd0);
    const __m512i lo1 = _mm512_mask_blend_epi32(odd, even1, _mm512_slli_epi64(odd1, 32));
    const __m512i hi1 = _mm512_mask_blend_epi32(odd, _mm512_srli_epi64(even1, 32), odd1);
    c0 = _mm512_xor_si512(_mm512_xor_si512(hi1, c1), _mm512_set1_epi32(int(k0)));
    c1 = lo1;
    c2 = _mm512_xor_si512(_mm512_xor_si512(hi0, c3), _mm512_set1_epi32(int(k1)));
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  // Transpose (word, block) to element order: words[16 j + l] = block 4 j + l / 4, word l % 4.
  // Within each 128-bit lane a 4x4 transpose of 32-bit words, then a 4x4 transpose of the lanes.
  const __m512i t0 = _mm512_unpacklo_epi32(c0, c1), t1 = _mm512_unpackhi_epi32(c0, c1);
  const __m512i t2 = _mm512_unpacklo_epi32(c2, c3), t3 = _mm512_unpackhi_epi32(c2, c3);
  const __m512i u0 = _mm512_unpacklo_epi64(t0, t2), u1 = _mm512_unpackhi_epi64(t0, t2);
  const __m512i u2 = _mm512_unpacklo_epi64(t1, t3), u3 = _mm512_unpackhi_epi64(t1, t3);
  const __m512i v0 = _mm512_shuffle_i32x4(u0, u1, 0x44), v1 = _mm512_shuffle_i32x4(u2, u3, 0x44);
  const __m512i v2 = _mm512_shuffle_i32x4(u0, u1, 0xEE), v3 = _mm512_shuffle_i32x4(u2, u3, 0xEE);
  _mm512_storeu_si512(words + 0, _mm512_shuffle_i32x4(v0, v1, 0x88));
  _mm512_storeu_si512(words + 16, _mm512_shuffle_i32x4(v0, v1, 0xDD));
  _mm512_storeu_si512(words + 32, _mm512_shuffle_i32x4(v2, v3, 0x88));
  _mm512_storeu_si512(words + 48, _mm512_shuffle_i32x4(v2, v3, 0xDD));
#else
  for (int i = 0; i < 16; ++i) {
    const std::array<uint32_t, 4> block = ref::dropout_block(key, stream, first_block + uint64_t(i));
    for (int w = 0; w < 4; ++w) words[4 * i + w] = block[size_t(w)];
  }
#endif
}
#pragma GCC diagnostic pop
}  // namespace

void dropout(const float* x, float* out, int64_t n, double p, uint64_t seed, uint64_t stream) {
  const uint64_t key = ref::dropout_key(seed);
  const float scale = float(1.0 / (1.0 - p));
  // draw = (word >> 8) / 2^24 >= p  <=>  (word >> 8) >= ceil(p 2^24): an exact integer test, so the
  // mask is bit-identical to the reference's.
  const uint32_t threshold = uint32_t(std::ceil(p * 16777216.0));
  const int64_t groups = (n + 63) / 64;  // 64 elements = 16 Philox blocks
  parallel_for(groups, std::max<int64_t>(1, kGrain / 64), [&](int64_t g0, int64_t g1) {
    uint32_t words[64];
    for (int64_t group = g0; group < g1; ++group) {
      philox_x16(uint64_t(group) * 16, stream, key, words);
      const int64_t base = group * 64;
      const int64_t count = std::min<int64_t>(64, n - base);
      const float* src = x + base;
      float* dst = out + base;
      // Unconditional loads and a select, so the loop vectorizes.
      for (int64_t j = 0; j < count; ++j) {
        const float kept = src[j] * scale;
        dst[j] = (words[j] >> 8) >= threshold ? kept : 0.0f;
      }
    }
  });
}

template <class I>
void embedding_forward(const I* indices, int64_t count, const float* weight, int64_t channels, float* out) {
  parallel_for(count, std::max<int64_t>(1, kGrain / std::max<int64_t>(channels, 1)), [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k)
      std::memcpy(out + k * channels, weight + int64_t(indices[k]) * channels, size_t(channels) * sizeof(float));
  });
}

template <class I>
void embedding_backward(const I* indices, int64_t count, const float* grad_out, int64_t channels,
                        float* grad_weight, int64_t rows) {
  std::memset(grad_weight, 0, size_t(rows * channels) * sizeof(float));
  // Each thread owns a fixed range of rows and adds the gradients that land there in index order.
  parallel_for(rows, std::max<int64_t>(1, rows / 64), [&](int64_t v0, int64_t v1) {
    for (int64_t k = 0; k < count; ++k) {
      const int64_t v = int64_t(indices[k]);
      if (v < v0 || v >= v1) continue;
      float* dst = grad_weight + v * channels;
      const float* src = grad_out + k * channels;
      for (int64_t c = 0; c < channels; ++c) dst[c] += src[c];
    }
  });
}

template void embedding_forward<int32_t>(const int32_t*, int64_t, const float*, int64_t, float*);
template void embedding_forward<int64_t>(const int64_t*, int64_t, const float*, int64_t, float*);
template void embedding_backward<int32_t>(const int32_t*, int64_t, const float*, int64_t, float*, int64_t);
template void embedding_backward<int64_t>(const int64_t*, int64_t, const float*, int64_t, float*, int64_t);

}  // namespace cpu
}  // namespace kernels
}  // namespace frugal
