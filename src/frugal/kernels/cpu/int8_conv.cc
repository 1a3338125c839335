// oneDNN 2.6 behind the int8 convolution: oneDNN writes the exact int32 sums (it refuses run-time
// output scales on convolutions), then one AVX-512 pass turns them into f32 in place with the
// per-channel scales, bias and ReLU, in the oracle's order, as cpu/int8.cc does for the matmul: one
// primitive per shape serves every scale, and results equal the oracle's bit for bit. The weights
// are reordered into the primitive's layout (with its s8-input compensation) once per weight
// buffer and kept.
// The reordered weights are keyed by the caller's pointer and checked against a hash of the bytes
// (one pass over the weights, small next to the convolution): a buffer freed and reused for other
// weights is packed again, never served stale. Limits: at most 64 packed weight sets per shape.
#include "frugal/kernels/cpu/int8_conv.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <unordered_map>
#include <vector>

#include <dnnl.hpp>

#include "frugal/base/error.h"
#include "frugal/base/parallel.h"
#include "frugal/kernels/cpu/onednn.h"

namespace frugal {
namespace kernels {
namespace cpu {

namespace {
using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;
using md = dnnl::memory::desc;

dnnl::engine& engine() { return onednn_engine(); }
dnnl::stream& stream() { return onednn_stream(); }

struct Entry {
  dnnl::convolution_forward primitive;
  md x, weight_user, weight_inner, y;
  dnnl::reorder weight_reorder;
  bool weight_needs_reorder = false;
  // reordered weights per caller buffer, with the hash of the bytes they were packed from
  std::unordered_map<const int8_t*, std::pair<uint64_t, std::shared_ptr<dnnl::memory>>> weights;
};

using Cache = std::unordered_map<PrimitiveKey, Entry, PrimitiveKeyHash>;
Cache& cache() {
  thread_local Cache instance;
  return instance;
}
thread_local int64_t t_created = 0;

Entry make_entry(bool x_unsigned, const Conv2dDims& d) {
  Entry e;
  e.x = md({d.n, d.c, d.h, d.w}, x_unsigned ? dt::u8 : dt::s8, tag::nhwc);
  e.weight_user = md({d.o, d.c, d.kernel_h, d.kernel_w}, dt::s8, tag::oihw);
  md weight_any({d.o, d.c, d.kernel_h, d.kernel_w}, dt::s8, tag::any);
  e.y = md({d.n, d.o, d.out_h, d.out_w}, dt::s32, tag::nhwc);
  dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, e.x,
                                       weight_any, e.y, {d.stride_h, d.stride_w},
                                       {d.dilation_h - 1, d.dilation_w - 1}, {d.padding_h, d.padding_w},
                                       {d.padding_h, d.padding_w});
  dnnl::convolution_forward::primitive_desc pd(desc, engine());
  e.primitive = dnnl::convolution_forward(pd);
  e.weight_inner = pd.weights_desc();
  e.weight_needs_reorder = !(e.weight_inner == e.weight_user);
  if (e.weight_needs_reorder)
    e.weight_reorder = dnnl::reorder(dnnl::reorder::primitive_desc(engine(), e.weight_user, engine(), e.weight_inner));
  ++t_created;
  return e;
}

dnnl::memory wrap(const md& desc, const void* data) { return dnnl::memory(desc, engine(), const_cast<void*>(data)); }

// y(p, o) = fma(float(acc(p, o)), scale[o], bias[o]), then ReLU, in place over the int32 sums of
// `pixels` rows of `o` channels (acc and y share each element's 4 bytes).
void finish_rows(float* y, int64_t pixels, int64_t o, const Int8ConvEpilogue& e) {
  parallel_for(pixels, std::max<int64_t>(1, 16384 / std::max<int64_t>(o, 1)), [&](int64_t begin, int64_t end) {
    const __m512 zero = _mm512_setzero_ps();
    for (int64_t p = begin; p < end; ++p) {
      float* row = y + p * o;
      const int32_t* acc = reinterpret_cast<const int32_t*>(row);
      int64_t j = 0;
      for (; j + 16 <= o; j += 16) {
        __m512 v = _mm512_cvtepi32_ps(_mm512_loadu_si512(acc + j));
        v = _mm512_fmadd_ps(v, _mm512_loadu_ps(e.scale + j), e.bias ? _mm512_loadu_ps(e.bias + j) : zero);
        if (e.relu) v = _mm512_max_ps(v, zero);
        _mm512_storeu_ps(row + j, v);
      }
      for (; j < o; ++j) {
        float v = std::fma(float(acc[j]), e.scale[j], e.bias ? e.bias[j] : 0.0f);
        if (e.relu) v = std::max(v, 0.0f);
        row[j] = v;
      }
    }
  });
}

}  // namespace

void quantize_activation(const float* x, int64_t n, float scale, bool to_unsigned, void* q) {
  const float inverse = 1.0f / scale;
  const float low = to_unsigned ? 0.0f : -127.0f, high = to_unsigned ? 255.0f : 127.0f;
  // Memory-bound, one pass over x: threads only for large inputs, in chunks of whole vectors.
  parallel_for((n + 15) / 16, int64_t(1) << 14, [&](int64_t begin_vector, int64_t end_vector) {
    const __m512 inv = _mm512_set1_ps(inverse), lo = _mm512_set1_ps(low), hi = _mm512_set1_ps(high);
    {
      const int64_t begin = begin_vector * 16, end = std::min(n, end_vector * 16);
      int64_t i = begin;
      for (; i + 16 <= end; i += 16) {
        __m512 v = _mm512_mul_ps(_mm512_loadu_ps(x + i), inv);
        v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);  // NaN becomes lo (max returns its second operand)
        const __m512i r = _mm512_cvtps_epi32(v);       // MXCSR's rounding: half to even
        if (to_unsigned) _mm_storeu_si128(reinterpret_cast<__m128i*>(static_cast<uint8_t*>(q) + i), _mm512_cvtusepi32_epi8(r));
        else _mm_storeu_si128(reinterpret_cast<__m128i*>(static_cast<int8_t*>(q) + i), _mm512_cvtsepi32_epi8(r));
      }
      if (i < end) ref::quantize_activation(x + i, end - i, scale, to_unsigned, static_cast<char*>(q) + i);
    }
  });
}

namespace {
// Runs the primitive: the exact int32 sums into acc (n, out_h, out_w, o).
void run_conv_s32(const void* x, bool x_unsigned, const int8_t* weight, void* acc, const Conv2dDims& d) {
  FRUGAL_CHECK(d.groups == 1 && d.channels_last, "conv2d_s8: one group, channels-last only");
  PrimitiveKey key;
  for (int64_t v : {d.n, d.c, d.h, d.w, d.o, d.kernel_h, d.kernel_w, d.out_h, d.out_w, d.stride_h, d.stride_w,
                    d.padding_h, d.padding_w, d.dilation_h, d.dilation_w, int64_t(x_unsigned), int64_t(num_threads())})
    key.add(v);
  auto it = cache().find(key);
  if (it == cache().end()) it = cache().emplace(key, make_entry(x_unsigned, d)).first;
  Entry& e = it->second;
  dnnl::memory weights = wrap(e.weight_user, weight);
  if (e.weight_needs_reorder) {
    uint64_t hash = 1469598103934665603ull;
    const int64_t bytes = d.o * d.c * d.kernel_h * d.kernel_w;
    for (int64_t i = 0; i < bytes; ++i) hash = (hash ^ uint64_t(uint8_t(weight[i]))) * 1099511628211ull;
    auto w = e.weights.find(weight);
    if (w == e.weights.end() || w->second.first != hash) {
      if (e.weights.size() >= 64) e.weights.clear();
      auto inner = std::make_shared<dnnl::memory>(e.weight_inner, engine());
      e.weight_reorder.execute(stream(), {{DNNL_ARG_FROM, weights}, {DNNL_ARG_TO, *inner}});
      stream().wait();
      w = e.weights.insert_or_assign(weight, std::make_pair(hash, inner)).first;
    }
    weights = *w->second.second;
  }
  e.primitive.execute(stream(), {{DNNL_ARG_SRC, wrap(e.x, x)}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, wrap(e.y, acc)}});
  stream().wait();
}

// Per-thread buffer for the int32 sums of the pooled convolution (grows to the largest seen).
int32_t* scratch_s32(size_t count) {
  thread_local std::vector<int32_t> buffer;
  if (buffer.size() < count) buffer.resize(count);
  return buffer.data();
}
}  // namespace

void conv2d_s8(const void* x, bool x_unsigned, const int8_t* weight, float* y, const Conv2dDims& d,
               const Int8ConvEpilogue& epilogue) {
  FRUGAL_CHECK(epilogue.scale != nullptr, "conv2d_s8: the epilogue needs its scales");
  if (d.n == 0 || d.o == 0 || d.out_h == 0 || d.out_w == 0) return;
  run_conv_s32(x, x_unsigned, weight, y, d);
  finish_rows(y, d.n * d.out_h * d.out_w, d.o, epilogue);
}

void conv2d_s8_relu_pool2x2(const void* x, bool x_unsigned, const int8_t* weight, float* y, const Conv2dDims& d,
                            const Int8ConvEpilogue& e) {
  FRUGAL_CHECK(e.scale != nullptr, "conv2d_s8: the epilogue needs its scales");
  const int64_t ph = d.out_h / 2, pw = d.out_w / 2, o = d.o;
  if (d.n == 0 || o == 0 || ph == 0 || pw == 0) return;
  int32_t* acc = scratch_s32(size_t(d.n * d.out_h * d.out_w * o));
  run_conv_s32(x, x_unsigned, weight, acc, d);
  // One pass: each pooled pixel reads its 2 x 2 window of sums, ReLU(max of fma(acc, scale, bias)).
  parallel_for(d.n * ph, 1, [&](int64_t begin, int64_t end) {
    const __m512 zero = _mm512_setzero_ps();
    for (int64_t row = begin; row < end; ++row) {
      const int64_t n = row / ph, i = row % ph;
      for (int64_t j = 0; j < pw; ++j) {
        const int32_t* window[4];
        for (int a = 0; a < 2; ++a)
          for (int b = 0; b < 2; ++b) window[a * 2 + b] = acc + ((n * d.out_h + 2 * i + a) * d.out_w + 2 * j + b) * o;
        float* out = y + ((n * ph + i) * pw + j) * o;
        int64_t c = 0;
        for (; c + 16 <= o; c += 16) {
          const __m512 scale = _mm512_loadu_ps(e.scale + c), bias = e.bias ? _mm512_loadu_ps(e.bias + c) : zero;
          __m512 m = zero;  // ReLU: the max starts at 0
          for (const int32_t* w : window)
            m = _mm512_max_ps(m, _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_loadu_si512(w + c)), scale, bias));
          _mm512_storeu_ps(out + c, m);
        }
        for (; c < o; ++c) {
          float m = 0.0f;
          for (const int32_t* w : window) m = std::max(m, std::fma(float(w[c]), e.scale[c], e.bias ? e.bias[c] : 0.0f));
          out[c] = m;
        }
      }
    }
  });
}

int64_t int8_conv_primitives_created() { return t_created; }

}  // namespace cpu
}  // namespace kernels
}  // namespace frugal
