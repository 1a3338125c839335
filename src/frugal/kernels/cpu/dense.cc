// oneDNN 2.6 (v2 API) behind the dense kernels. Each call looks its primitive up in a per-thread
// cache keyed by (kind, dtype, shapes, flags, thread count), wraps the caller's buffers as
// dnnl::memory without copying, and reorders only where the primitive chose another layout.
// Limits: CPU engine only; one in-order stream per thread; cached primitives live until
// clear_dense_cache() or thread exit.
#include "frugal/kernels/cpu/dense.h"
#include "frugal/kernels/cpu/conv.h"
#include "frugal/kernels/cpu/pool.h"
#include "frugal/kernels/cpu/onednn.h"

#include <algorithm>
#include <array>
#include <memory>
#include <unordered_map>
#include <vector>

#include <dnnl.hpp>
#include <immintrin.h>

#include "frugal/base/error.h"
#include "frugal/base/parallel.h"
#include "frugal/tensor/tensor.h"

namespace frugal {
namespace kernels {
namespace cpu {

dnnl::engine& onednn_engine() {
  static dnnl::engine instance(dnnl::engine::kind::cpu, 0);
  return instance;
}

dnnl::stream& onednn_stream() {
  thread_local dnnl::stream instance(onednn_engine());
  return instance;
}

namespace {
using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;
using md = dnnl::memory::desc;
using dnnl_dims = dnnl::memory::dims;

dnnl::engine& engine() { return onednn_engine(); }
dnnl::stream& stream() { return onednn_stream(); }

enum class Kind : int64_t { matmul = 1, conv_forward, conv_backward_data, conv_backward_weights, pool_forward, pool_backward };

using Key = PrimitiveKey;
using KeyHash = PrimitiveKeyHash;

Key make_key(Kind kind, dt type) {
  Key key;
  key.add(int64_t(kind)).add(int64_t(type)).add(num_threads());
  return key;
}

// One operand of a primitive: the caller's plain layout and the layout the primitive runs in,
// with the reorder between them when they differ.
struct Operand {
  md user, inner;
  bool needs_reorder = false;
  dnnl::reorder reorder;  // user -> inner for inputs, inner -> user for outputs
};

Operand make_operand(const md& user, const md& inner, bool input) {
  Operand op{user, inner, !(user == inner), {}};
  if (op.needs_reorder)
    op.reorder = input ? dnnl::reorder(dnnl::reorder::primitive_desc(engine(), user, engine(), inner))
                       : dnnl::reorder(dnnl::reorder::primitive_desc(engine(), inner, engine(), user));
  return op;
}

// Per-thread scratch buffers for reordered operands, one slot per operand role; they grow to the
// largest size seen and are shared by every cached primitive (calls on a thread are sequential).
struct Scratch {
  std::array<std::unique_ptr<Storage>, 4> slots;
  void* get(int slot, size_t bytes) {
    auto& s = slots[size_t(slot)];
    if (!s || s->bytes() < bytes) {
      MemoryCategoryGuard workspace(MemoryCategory::workspace);  // memory accounting (tensor.h)
      s = std::make_unique<Storage>(std::max<size_t>(bytes, 64));
    }
    return s->data();
  }
};

struct MatmulEntry {
  dnnl::matmul primitive;
  md a, b, bias, c;
};

struct ConvForwardEntry {
  dnnl::convolution_forward primitive;
  Operand x, weight, y;
  md bias;
};

struct ConvBackwardDataEntry {
  dnnl::convolution_backward_data primitive;
  Operand grad_y, weight, grad_x;
};

struct ConvBackwardWeightsEntry {
  dnnl::convolution_backward_weights primitive;
  Operand x, grad_y, grad_weight;
  md grad_bias;
};

struct PoolForwardEntry {
  dnnl::pooling_forward primitive;
  md x, y, workspace;
};

struct PoolBackwardEntry {
  dnnl::pooling_backward primitive;
  md grad_y, grad_x, workspace;
};

struct Cache {
  std::unordered_map<Key, MatmulEntry, KeyHash> matmul;
  std::unordered_map<Key, ConvForwardEntry, KeyHash> conv_forward;
  std::unordered_map<Key, ConvBackwardDataEntry, KeyHash> conv_backward_data;
  std::unordered_map<Key, ConvBackwardWeightsEntry, KeyHash> conv_backward_weights;
  std::unordered_map<Key, PoolForwardEntry, KeyHash> pool_forward;
  std::unordered_map<Key, PoolBackwardEntry, KeyHash> pool_backward;
  Scratch scratch;
};

Cache& cache() {
  thread_local Cache instance;
  return instance;
}

thread_local int64_t t_primitives_created = 0;

template <class Map, class Make>
auto& find_or_make(Map& map, const Key& key, Make&& make) {
  auto it = map.find(key);
  if (it == map.end()) {
    it = map.emplace(key, make()).first;
    ++t_primitives_created;
  }
  return it->second;
}

dnnl::memory wrap(const md& desc, const void* data) {
  return dnnl::memory(desc, engine(), const_cast<void*>(data));
}

// The memory a primitive reads an input from: the caller's buffer, or its reordered copy.
dnnl::memory bind_input(const Operand& op, const void* data, int slot) {
  dnnl::memory user = wrap(op.user, data);
  if (!op.needs_reorder) return user;
  dnnl::memory inner(op.inner, engine(), cache().scratch.get(slot, op.inner.get_size()));
  op.reorder.execute(stream(), {{DNNL_ARG_FROM, user}, {DNNL_ARG_TO, inner}});
  return inner;
}

// The memory a primitive writes an output to; finish_output copies it to the caller if needed.
dnnl::memory bind_output(const Operand& op, void* data, int slot) {
  if (!op.needs_reorder) return wrap(op.user, data);
  return dnnl::memory(op.inner, engine(), cache().scratch.get(slot, op.inner.get_size()));
}

void finish_output(const Operand& op, const dnnl::memory& inner, void* data) {
  if (op.needs_reorder) op.reorder.execute(stream(), {{DNNL_ARG_FROM, inner}, {DNNL_ARG_TO, wrap(op.user, data)}});
}

// ---- matmul ----

// A stored operand of logical shape (batch, rows, cols) as oneDNN dims and strides; a batch
// stride of 0 becomes a broadcast batch dimension of 1.
md matrix_desc(int64_t batch, int64_t rows, int64_t cols, bool transposed, int64_t ld, int64_t batch_stride, dt type) {
  const int64_t stored_rows = transposed ? cols : rows;
  const int64_t b = batch_stride == 0 ? 1 : batch;
  const int64_t bs = batch_stride == 0 ? stored_rows * ld : batch_stride;
  if (batch == 1) {
    // A plain 2-D problem: oneDNN's brgemm blocks 2-D descriptors better than (1, rows, cols) ones
    // (bf16 1024^3 on this CPU: about 430 vs 280 GFLOP/s).
    return md({rows, cols}, type, transposed ? dnnl_dims{1, ld} : dnnl_dims{ld, 1});
  }
  dnnl_dims strides = transposed ? dnnl_dims{bs, 1, ld} : dnnl_dims{bs, ld, 1};
  return md({b, rows, cols}, type, strides);
}

// Folds a batch that only repeats b into the rows of a: one large matmul beats many small ones.
MatmulDims fold_batch(MatmulDims d) {
  if (d.batch > 1 && d.batch_stride_b == 0 && !d.transpose_a && d.batch_stride_a == d.m * d.lda &&
      d.batch_stride_c == d.m * d.ldc) {
    d.m *= d.batch;
    d.batch = 1;
  }
  return d;
}

void run_matmul(const void* a, const void* b, const float* bias, float* c, const MatmulDims& dims_in, dt in_type,
                bool relu) {
  const MatmulDims d = fold_batch(dims_in);
  if (d.batch == 0 || d.m == 0 || d.n == 0) return;
  if (d.k == 0) {  // an empty sum: c = bias or 0
    for (int64_t e = 0; e < d.batch; ++e)
      for (int64_t i = 0; i < d.m; ++i)
        for (int64_t j = 0; j < d.n; ++j) {
          const float v = bias ? bias[j] : 0.0f;
          c[e * d.batch_stride_c + i * d.ldc + j] = relu && v < 0.0f ? 0.0f : v;
        }
    return;
  }
  Key key = make_key(Kind::matmul, in_type);
  for (int64_t v : {d.batch, d.m, d.n, d.k, int64_t(d.transpose_a), int64_t(d.transpose_b), d.lda, d.ldb, d.ldc,
                    d.batch_stride_a, d.batch_stride_b, d.batch_stride_c, int64_t(bias != nullptr), int64_t(relu)})
    key.add(v);
  MatmulEntry& entry = find_or_make(cache().matmul, key, [&] {
    MatmulEntry e;
    e.a = matrix_desc(d.batch, d.m, d.k, d.transpose_a, d.lda, d.batch_stride_a, in_type);
    e.b = matrix_desc(d.batch, d.k, d.n, d.transpose_b, d.ldb, d.batch_stride_b, in_type);
    e.c = matrix_desc(d.batch, d.m, d.n, false, d.ldc, d.batch_stride_c, dt::f32);
    if (bias) e.bias = d.batch == 1 ? md({1, d.n}, dt::f32, dnnl_dims{d.n, 1}) : md({1, 1, d.n}, dt::f32, dnnl_dims{d.n, d.n, 1});
    auto desc = bias ? dnnl::matmul::desc(e.a, e.b, e.bias, e.c) : dnnl::matmul::desc(e.a, e.b, e.c);
    dnnl::primitive_attr attr;
    if (relu) {  // the bias+activation epilogue runs inside the matmul kernel
      dnnl::post_ops ops;
      ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
      attr.set_post_ops(ops);
    }
    e.primitive = dnnl::matmul(dnnl::matmul::primitive_desc(desc, attr, engine()));
    return e;
  });
  std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_SRC, wrap(entry.a, a)}, {DNNL_ARG_WEIGHTS, wrap(entry.b, b)}, {DNNL_ARG_DST, wrap(entry.c, c)}};
  if (bias) args.emplace(DNNL_ARG_BIAS, wrap(entry.bias, bias));
  entry.primitive.execute(stream(), args);
  stream().wait();
}

// ---- convolution ----

struct ConvDescs {
  md x, weight, y, bias;                     // the caller's plain layouts
  md x_any, weight_any, y_any;               // "any": the primitive picks
  dnnl_dims strides, dilates, padding_l, padding_r;
};

// Element types per role: backward passes of bf16 training read bf16 gradients (y) and write f32
// ones (x for backward data, weight for backward weights), so each role gets its own type.
ConvDescs conv_descs_typed(const Conv2dDims& d, dt x_type, dt weight_type, dt y_type) {
  ConvDescs c;
  // Channels-last activations are given to the primitive as they are: oneDNN's NHWC kernels run
  // as fast as its blocked ones here, without the reorders around every call.
  const tag act = d.channels_last ? tag::nhwc : tag::nchw, act_inner = d.channels_last ? tag::nhwc : tag::any;
  c.x = md({d.n, d.c, d.h, d.w}, x_type, act);
  c.x_any = md({d.n, d.c, d.h, d.w}, x_type, act_inner);
  if (d.groups == 1) {
    c.weight = md({d.o, d.c, d.kernel_h, d.kernel_w}, weight_type, tag::oihw);
    c.weight_any = md({d.o, d.c, d.kernel_h, d.kernel_w}, weight_type, tag::any);
  } else {  // (o, c / g, kh, kw) contiguous is exactly goihw
    dnnl_dims dims{d.groups, d.o / d.groups, d.c / d.groups, d.kernel_h, d.kernel_w};
    c.weight = md(dims, weight_type, tag::goihw);
    c.weight_any = md(dims, weight_type, tag::any);
  }
  c.y = md({d.n, d.o, d.out_h, d.out_w}, y_type, act);
  c.y_any = md({d.n, d.o, d.out_h, d.out_w}, y_type, act_inner);
  c.bias = md({d.o}, dt::f32, tag::x);
  c.strides = {d.stride_h, d.stride_w};
  c.dilates = {d.dilation_h - 1, d.dilation_w - 1};  // oneDNN counts the gaps: 0 = dense
  c.padding_l = {d.padding_h, d.padding_w};
  // Symmetric padding: oneDNN checks (in - kernel_extent + pad_l + pad_r) / stride + 1 == out
  // with integer division, which is PyTorch's floor rule.
  c.padding_r = {d.padding_h, d.padding_w};
  return c;
}

// Forward layouts: inputs in in_type, output (and bias) f32.
ConvDescs conv_descs(const Conv2dDims& d, dt in_type) { return conv_descs_typed(d, in_type, in_type, dt::f32); }

Key conv_key(Kind kind, dt type, const Conv2dDims& d, bool bias) {
  Key key = make_key(kind, type);
  for (int64_t v : {d.n, d.c, d.h, d.w, d.o, d.kernel_h, d.kernel_w, d.out_h, d.out_w, d.stride_h, d.stride_w, d.padding_h,
                    d.padding_w, d.dilation_h, d.dilation_w, d.groups, int64_t(bias), int64_t(d.channels_last)})
    key.add(v);
  return key;
}

dnnl::convolution_forward::primitive_desc conv_forward_pd(const ConvDescs& c, bool bias) {
  auto desc = bias ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                                     c.x_any, c.weight_any, c.bias, c.y_any, c.strides, c.dilates,
                                                     c.padding_l, c.padding_r)
                   : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                                     c.x_any, c.weight_any, c.y_any, c.strides, c.dilates, c.padding_l,
                                                     c.padding_r);
  return dnnl::convolution_forward::primitive_desc(desc, engine());
}

void run_conv_forward(const void* x, const void* weight, const float* bias, void* y, const Conv2dDims& d, dt in_type,
                      dt out_type = dt::f32) {
  Key key = conv_key(Kind::conv_forward, in_type, d, bias != nullptr);
  key.add(int64_t(out_type));
  ConvForwardEntry& entry = find_or_make(cache().conv_forward, key, [&] {
    ConvDescs c = conv_descs_typed(d, in_type, in_type, out_type);
    auto pd = conv_forward_pd(c, bias != nullptr);
    ConvForwardEntry e;
    e.primitive = dnnl::convolution_forward(pd);
    e.x = make_operand(c.x, pd.src_desc(), true);
    e.weight = make_operand(c.weight, pd.weights_desc(), true);
    e.y = make_operand(c.y, pd.dst_desc(), false);
    e.bias = c.bias;
    return e;
  });
  dnnl::memory y_mem = bind_output(entry.y, y, 2);
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, bind_input(entry.x, x, 0)},
                                             {DNNL_ARG_WEIGHTS, bind_input(entry.weight, weight, 1)},
                                             {DNNL_ARG_DST, y_mem}};
  if (bias) args.emplace(DNNL_ARG_BIAS, wrap(entry.bias, bias));
  entry.primitive.execute(stream(), args);
  finish_output(entry.y, y_mem, y);
  stream().wait();
}

// ---- pooling ----

struct PoolDescs {
  md x, y;
  dnnl_dims strides, kernel, padding_l, padding_r;
  dnnl::algorithm algorithm;
};

PoolDescs pool_descs(const Pool2dDims& d, bool max) {
  PoolDescs p;
  p.x = md({d.n, d.c, d.h, d.w}, dt::f32, tag::nchw);
  p.y = md({d.n, d.c, d.out_h, d.out_w}, dt::f32, tag::nchw);
  p.strides = {d.stride_h, d.stride_w};
  p.kernel = {d.kernel_h, d.kernel_w};
  p.padding_l = {d.padding_h, d.padding_w};
  p.padding_r = {d.padding_h, d.padding_w};  // floor rule, as for convolution
  // With symmetric padding no window reaches past the padded edge, so "include padding" divides
  // by kernel_h * kernel_w exactly as PyTorch's count_include_pad does.
  p.algorithm = max ? dnnl::algorithm::pooling_max
                    : d.count_include_pad ? dnnl::algorithm::pooling_avg_include_padding
                                          : dnnl::algorithm::pooling_avg_exclude_padding;
  return p;
}

Key pool_key(Kind kind, const Pool2dDims& d, bool max) {
  Key key = make_key(kind, dt::f32);
  for (int64_t v : {d.n, d.c, d.h, d.w, d.out_h, d.out_w, d.kernel_h, d.kernel_w, d.stride_h, d.stride_w, d.padding_h,
                    d.padding_w, int64_t(d.count_include_pad), int64_t(max)})
    key.add(v);
  return key;
}

dnnl::pooling_forward::primitive_desc pool_forward_pd(const PoolDescs& p) {
  dnnl::pooling_forward::desc desc(dnnl::prop_kind::forward_training, p.algorithm, p.x, p.y, p.strides, p.kernel,
                                   p.padding_l, p.padding_r);
  return dnnl::pooling_forward::primitive_desc(desc, engine());
}

PoolForwardEntry& pool_forward_entry(const Pool2dDims& d, bool max) {
  return find_or_make(cache().pool_forward, pool_key(Kind::pool_forward, d, max), [&] {
    PoolDescs p = pool_descs(d, max);
    auto pd = pool_forward_pd(p);
    return PoolForwardEntry{dnnl::pooling_forward(pd), p.x, p.y, pd.workspace_desc()};
  });
}

void run_pool_forward(const float* x, float* y, uint8_t* workspace, const Pool2dDims& d, bool max) {
  PoolForwardEntry& entry = pool_forward_entry(d, max);
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, wrap(entry.x, x)}, {DNNL_ARG_DST, wrap(entry.y, y)}};
  if (max) args.emplace(DNNL_ARG_WORKSPACE, wrap(entry.workspace, workspace));
  entry.primitive.execute(stream(), args);
  stream().wait();
}

void run_pool_backward(const float* grad_y, const uint8_t* workspace, float* grad_x, const Pool2dDims& d, bool max) {
  PoolBackwardEntry& entry = find_or_make(cache().pool_backward, pool_key(Kind::pool_backward, d, max), [&] {
    PoolDescs p = pool_descs(d, max);
    auto forward = pool_forward_pd(p);
    dnnl::pooling_backward::desc desc(p.algorithm, p.x, p.y, p.strides, p.kernel, p.padding_l, p.padding_r);
    dnnl::pooling_backward::primitive_desc pd(desc, engine(), forward);
    return PoolBackwardEntry{dnnl::pooling_backward(pd), p.y, p.x, forward.workspace_desc()};
  });
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_DIFF_DST, wrap(entry.grad_y, grad_y)},
                                             {DNNL_ARG_DIFF_SRC, wrap(entry.grad_x, grad_x)}};
  if (max) args.emplace(DNNL_ARG_WORKSPACE, wrap(entry.workspace, workspace));
  entry.primitive.execute(stream(), args);
  stream().wait();
}

// grad_x (f32) from grad_y and weight in in_type (f32, or bf16 with f32 accumulation).
void run_conv_backward_data(const void* grad_y, const void* weight, float* grad_x, const Conv2dDims& d, dt in_type) {
  const Key key = conv_key(Kind::conv_backward_data, in_type, d, false);
  ConvBackwardDataEntry& entry = find_or_make(cache().conv_backward_data, key, [&] {
    ConvDescs c = conv_descs_typed(d, dt::f32, in_type, in_type);
    auto forward = conv_forward_pd(conv_descs(d, in_type), false);
    dnnl::convolution_backward_data::desc desc(dnnl::algorithm::convolution_direct, c.x_any, c.weight_any, c.y_any,
                                               c.strides, c.dilates, c.padding_l, c.padding_r);
    dnnl::convolution_backward_data::primitive_desc pd(desc, engine(), forward);
    ConvBackwardDataEntry e;
    e.primitive = dnnl::convolution_backward_data(pd);
    e.grad_y = make_operand(c.y, pd.diff_dst_desc(), true);
    e.weight = make_operand(c.weight, pd.weights_desc(), true);
    e.grad_x = make_operand(c.x, pd.diff_src_desc(), false);
    return e;
  });
  dnnl::memory grad_x_mem = bind_output(entry.grad_x, grad_x, 2);
  entry.primitive.execute(stream(), {{DNNL_ARG_DIFF_DST, bind_input(entry.grad_y, grad_y, 0)},
                                     {DNNL_ARG_WEIGHTS, bind_input(entry.weight, weight, 1)},
                                     {DNNL_ARG_DIFF_SRC, grad_x_mem}});
  finish_output(entry.grad_x, grad_x_mem, grad_x);
  stream().wait();
}


// grad_weight and grad_bias (f32) from x and grad_y in in_type (f32, or bf16 with f32 accumulation).
void run_conv_backward_weights(const void* x, const void* grad_y, float* grad_weight, float* grad_bias,
                               const Conv2dDims& d, dt in_type) {
  const bool bias = grad_bias != nullptr;
  const Key key = conv_key(Kind::conv_backward_weights, in_type, d, bias);
  ConvBackwardWeightsEntry& entry = find_or_make(cache().conv_backward_weights, key, [&] {
    ConvDescs c = conv_descs_typed(d, in_type, dt::f32, in_type);
    auto forward = conv_forward_pd(conv_descs(d, in_type), bias);
    auto desc = bias ? dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, c.x_any,
                                                                c.weight_any, c.bias, c.y_any, c.strides, c.dilates,
                                                                c.padding_l, c.padding_r)
                     : dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, c.x_any,
                                                                c.weight_any, c.y_any, c.strides, c.dilates,
                                                                c.padding_l, c.padding_r);
    dnnl::convolution_backward_weights::primitive_desc pd(desc, engine(), forward);
    ConvBackwardWeightsEntry e;
    e.primitive = dnnl::convolution_backward_weights(pd);
    e.x = make_operand(c.x, pd.src_desc(), true);
    e.grad_y = make_operand(c.y, pd.diff_dst_desc(), true);
    e.grad_weight = make_operand(c.weight, pd.diff_weights_desc(), false);
    e.grad_bias = c.bias;
    return e;
  });
  dnnl::memory grad_weight_mem = bind_output(entry.grad_weight, grad_weight, 2);
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, bind_input(entry.x, x, 0)},
                                             {DNNL_ARG_DIFF_DST, bind_input(entry.grad_y, grad_y, 1)},
                                             {DNNL_ARG_DIFF_WEIGHTS, grad_weight_mem}};
  if (bias) args.emplace(DNNL_ARG_DIFF_BIAS, wrap(entry.grad_bias, grad_bias));
  entry.primitive.execute(stream(), args);
  finish_output(entry.grad_weight, grad_weight_mem, grad_weight);
  stream().wait();
}

// ---- f16 rounding (fp16-mixed) ----

constexpr int64_t kRoundGrain = 32768;  // elements per thread chunk; the rounding is memory bound

void round_to_f16_range(const float* x, float* y, int64_t begin, int64_t end) {
  int64_t i = begin;
#if defined(__AVX512F__)
  // vcvtps2ph rounds by the immediate (nearest even), saturates nothing (overflow -> inf) and keeps
  // denormal halves; only NaNs differ from the scalar rule (payload kept), so they are replaced.
  const __m512i sign_mask = _mm512_set1_epi32(int(0x80000000u));
  const __m512i quiet_nan = _mm512_set1_epi32(0x7FC00000);
  // The all-lanes maskz forms: GCC 12 warns about the undefined pass-through of the plain ones.
  const __mmask16 all = 0xFFFF;
  for (; i + 16 <= end; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    __m512 r = _mm512_maskz_cvtph_ps(all, _mm512_maskz_cvtps_ph(all, v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    const __m512i canonical = _mm512_or_si512(_mm512_and_si512(_mm512_castps_si512(v), sign_mask), quiet_nan);
    r = _mm512_mask_mov_ps(r, nan, _mm512_castsi512_ps(canonical));
    _mm512_storeu_ps(y + i, r);
  }
#endif
  for (; i < end; ++i) y[i] = f16_to_float(float_to_f16(x[i]));
}

}  // namespace

void round_to_f16(const float* x, float* y, int64_t n) {
  parallel_for(n, kRoundGrain, [&](int64_t begin, int64_t end) { round_to_f16_range(x, y, begin, end); });
}

void matmul(const float* a, const float* b, const float* bias, float* c, const MatmulDims& dims, bool relu) {
  run_matmul(a, b, bias, c, dims, dt::f32, relu);
}

void matmul_bf16(const bf16_t* a, const bf16_t* b, const float* bias, float* c, const MatmulDims& dims, bool relu) {
  run_matmul(a, b, bias, c, dims, dt::bf16, relu);
}

void conv2d_forward(const float* x, const float* weight, const float* bias, float* y, const Conv2dDims& dims) {
  if (conv_direct_supported(dims, false)) return conv_direct_forward_nhwc(x, weight, bias, y, dims);
  if (conv_winograd_supported(dims)) return conv_winograd_forward_nhwc(x, weight, bias, y, dims);
  run_conv_forward(x, weight, bias, y, dims, dt::f32);
}

void conv2d_forward_bf16(const bf16_t* x, const bf16_t* weight, const float* bias, float* y, const Conv2dDims& dims) {
  if (conv_direct_supported(dims, true)) return conv_direct_forward_nhwc(x, weight, bias, y, dims);
  run_conv_forward(x, weight, bias, y, dims, dt::bf16);
}

void conv2d_forward_bf16(const bf16_t* x, const bf16_t* weight, const float* bias, bf16_t* y, const Conv2dDims& dims) {
  if (conv_direct_supported(dims, true)) return conv_direct_forward_nhwc(x, weight, bias, y, dims);
  run_conv_forward(x, weight, bias, y, dims, dt::bf16, dt::bf16);
}

namespace {
// The data gradient of a stride-1 convolution is itself a stride-1 convolution: of grad_y, with
// the kernel turned 180 degrees and its channel axes swapped, padded by kernel - 1 - padding.
// On channels-last f32 operands oneDNN 2.6 runs that as a forward convolution (brgconv) faster
// than with its NHWC backward-data kernel: 4.7-5.0 against 5.7-5.9 ms on the CNN's 32 -> 64 layer.
// The values differ only in f32 summation order.
bool data_grad_as_forward(const Conv2dDims& d) {
  return is_stride1_channels_last(d) && d.padding_h < d.kernel_h && d.padding_w < d.kernel_w;
}

Conv2dDims data_grad_dims(const Conv2dDims& d) {
  Conv2dDims f = d;
  f.c = d.o, f.o = d.c, f.h = d.out_h, f.w = d.out_w, f.out_h = d.h, f.out_w = d.w;
  f.padding_h = d.kernel_h - 1 - d.padding_h, f.padding_w = d.kernel_w - 1 - d.padding_w;
  return f;
}

// weight (o, c, kh, kw) turned and transposed into this thread's buffer: (c, o, kh, kw).
const float* data_grad_weight(const float* weight, const Conv2dDims& d) {
  thread_local std::vector<float> flipped;  // grows, never shrinks
  const int64_t KH = d.kernel_h, KW = d.kernel_w;
  flipped.resize(size_t(d.o * d.c * KH * KW));
  for (int64_t o = 0; o < d.o; ++o)
    for (int64_t c = 0; c < d.c; ++c)
      for (int64_t kh = 0; kh < KH; ++kh)
        for (int64_t kw = 0; kw < KW; ++kw)
          flipped[size_t(((c * d.o + o) * KH + kh) * KW + kw)] =
              weight[((o * d.c + c) * KH + (KH - 1 - kh)) * KW + (KW - 1 - kw)];
  return flipped.data();
}
}  // namespace

void conv2d_backward_data(const float* grad_y, const float* weight, float* grad_x, const Conv2dDims& d) {
  if (data_grad_as_forward(d)) {
    const Conv2dDims f = data_grad_dims(d);
    const float* turned = data_grad_weight(weight, d);
    if (conv_winograd_supported(f)) return conv_winograd_forward_nhwc(grad_y, turned, nullptr, grad_x, f);
    return run_conv_forward(grad_y, turned, nullptr, grad_x, f, dt::f32);
  }
  run_conv_backward_data(grad_y, weight, grad_x, d, dt::f32);
}

// bf16 stays on the backward-data kernel: the forward form measured 2.37-2.44 against its
// 2.14-2.29 ms on the CNN's 32 -> 64 layer.
void conv2d_backward_data_bf16(const bf16_t* grad_y, const bf16_t* weight, float* grad_x, const Conv2dDims& d) {
  run_conv_backward_data(grad_y, weight, grad_x, d, dt::bf16);
}

void conv2d_backward_weights(const float* x, const float* grad_y, float* grad_weight, float* grad_bias,
                             const Conv2dDims& d) {
  if (conv_winograd_weight_grad_supported(d)) return conv_winograd_weight_grad_nhwc(x, grad_y, grad_weight, grad_bias, d);
  if (conv_weight_grad_supported(d, false)) return conv_weight_grad_nhwc(x, grad_y, grad_weight, grad_bias, d);
  run_conv_backward_weights(x, grad_y, grad_weight, grad_bias, d, dt::f32);
}

void conv2d_backward_weights_bf16(const bf16_t* x, const bf16_t* grad_y, float* grad_weight, float* grad_bias,
                                  const Conv2dDims& d) {
  if (conv_weight_grad_supported(d, true)) return conv_weight_grad_nhwc(x, grad_y, grad_weight, grad_bias, d);
  run_conv_backward_weights(x, grad_y, grad_weight, grad_bias, d, dt::bf16);
}

// 2x2 windows, stride 2, no padding: the hand kernel of pool.h (about 4x oneDNN's on NCHW here).
bool is_pool2x2(const Pool2dDims& d) {
  return d.kernel_h == 2 && d.kernel_w == 2 && d.stride_h == 2 && d.stride_w == 2 && d.padding_h == 0 &&
         d.padding_w == 0 && d.out_h == d.h / 2 && d.out_w == d.w / 2;
}

size_t max_pool2d_workspace_bytes(const Pool2dDims& dims) {
  if (is_pool2x2(dims)) return size_t(dims.n * dims.c * dims.out_h * dims.out_w);
  return pool_forward_entry(dims, true).workspace.get_size();
}

void max_pool2d_forward(const float* x, float* y, uint8_t* workspace, const Pool2dDims& dims) {
  if (is_pool2x2(dims)) return max_pool2x2_forward(x, y, workspace, dims.n * dims.c, dims.h, dims.w);
  run_pool_forward(x, y, workspace, dims, true);
}

void max_pool2d_backward(const float* grad_y, const uint8_t* workspace, float* grad_x, const Pool2dDims& dims) {
  if (is_pool2x2(dims)) return max_pool2x2_backward(grad_y, workspace, grad_x, dims.n * dims.c, dims.h, dims.w);
  run_pool_backward(grad_y, workspace, grad_x, dims, true);
}

void avg_pool2d_forward(const float* x, float* y, const Pool2dDims& dims) {
  run_pool_forward(x, y, nullptr, dims, false);
}

void avg_pool2d_backward(const float* grad_y, float* grad_x, const Pool2dDims& dims) {
  run_pool_backward(grad_y, nullptr, grad_x, dims, false);
}

void adaptive_avg_pool2d_forward(const float* x, float* y, int64_t planes, int64_t h, int64_t w, int64_t out_h,
                                 int64_t out_w) {
  parallel_for(planes, 16, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p)
      for (int64_t oh = 0; oh < out_h; ++oh) {
        const int64_t h0 = ref::adaptive_start(oh, h, out_h), h1 = ref::adaptive_end(oh, h, out_h);
        for (int64_t ow = 0; ow < out_w; ++ow) {
          const int64_t w0 = ref::adaptive_start(ow, w, out_w), w1 = ref::adaptive_end(ow, w, out_w);
          float total = 0;
          for (int64_t ih = h0; ih < h1; ++ih)
            for (int64_t iw = w0; iw < w1; ++iw) total += x[(p * h + ih) * w + iw];
          y[(p * out_h + oh) * out_w + ow] = total / float((h1 - h0) * (w1 - w0));
        }
      }
  });
}

void adaptive_avg_pool2d_backward(const float* grad_y, float* grad_x, int64_t planes, int64_t h, int64_t w,
                                  int64_t out_h, int64_t out_w) {
  // Planes are independent, so each thread owns whole planes of grad_x: no write conflicts.
  parallel_for(planes, 16, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      float* gx = grad_x + p * h * w;  // (h, w)
      std::fill(gx, gx + h * w, 0.0f);
      for (int64_t oh = 0; oh < out_h; ++oh) {
        const int64_t h0 = ref::adaptive_start(oh, h, out_h), h1 = ref::adaptive_end(oh, h, out_h);
        for (int64_t ow = 0; ow < out_w; ++ow) {
          const int64_t w0 = ref::adaptive_start(ow, w, out_w), w1 = ref::adaptive_end(ow, w, out_w);
          const float g = grad_y[(p * out_h + oh) * out_w + ow] / float((h1 - h0) * (w1 - w0));
          for (int64_t ih = h0; ih < h1; ++ih)
            for (int64_t iw = w0; iw < w1; ++iw) gx[ih * w + iw] += g;
        }
      }
    }
  });
}

void clear_dense_cache() { cache() = Cache(); }

int64_t dense_primitives_created() { return t_primitives_created; }

}  // namespace cpu
}  // namespace kernels
}  // namespace frugal
