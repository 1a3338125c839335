// GFLOP/s of matmul and convolution, f32 and bf16 (and int8 matmul), measured two ways on the same shapes: raw
// oneDNN (primitive made once, executed in the loop) and frugal's path (kernels::cpu, and the
// autograd op for f32), so the engine's overhead shows. Run with OMP_NUM_THREADS=2 (or any count).
// Raw oneDNN is used here only as the yardstick; frugal code outside kernels/cpu never includes it.
#include <benchmark/benchmark.h>

#include <cstring>
#include <vector>

#include <dnnl.hpp>

#include "frugal/autograd/ops.h"
#include "frugal/kernels/cpu/dense.h"
#include "frugal/kernels/cpu/int8.h"
#include "frugal/tensor/tensor.h"

namespace frugal {
namespace {
using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

Tensor filled(const Shape& shape, DType dtype = DType::f32) {
  Tensor t = Tensor::empty(shape, DType::f32);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = float((i * 7919) % 1001) / 1001.0f - 0.5f;
  return dtype == DType::f32 ? t : t.to(dtype);
}

void set_flops(benchmark::State& state, double flops_per_iteration) {
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops_per_iteration * 1e-9 * double(state.iterations()), benchmark::Counter::kIsRate);
}

// ---- matmul: args (M, K, N) ----

void raw_matmul(benchmark::State& state, dt type) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  dnnl::memory::desc a({m, k}, type, tag::ab), b({k, n}, type, tag::ab), c({m, n}, dt::f32, tag::ab);
  dnnl::matmul primitive(dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, b, c), engine()));
  dnnl::memory am(a, engine()), bm(b, engine()), cm(c, engine());
  Tensor fill_a = filled({m, k}, type == dt::f32 ? DType::f32 : DType::bf16);
  Tensor fill_b = filled({k, n}, type == dt::f32 ? DType::f32 : DType::bf16);
  std::memcpy(am.get_data_handle(), fill_a.raw_data(), fill_a.nbytes());
  std::memcpy(bm.get_data_handle(), fill_b.raw_data(), fill_b.nbytes());
  dnnl::stream s(engine());
  for (auto _ : state) {
    primitive.execute(s, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
    s.wait();
  }
  set_flops(state, 2.0 * double(m) * double(n) * double(k));
}

kernels::MatmulDims plain_dims(int64_t m, int64_t k, int64_t n) {
  kernels::MatmulDims d;
  d.m = m, d.n = n, d.k = k, d.lda = k, d.ldb = n, d.ldc = n;
  return d;
}

void BM_matmul_f32_raw_onednn(benchmark::State& state) { raw_matmul(state, dt::f32); }
void BM_matmul_bf16_raw_onednn(benchmark::State& state) { raw_matmul(state, dt::bf16); }

void BM_matmul_f32_frugal_kernel(benchmark::State& state) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  Tensor a = filled({m, k}), b = filled({k, n}), c = Tensor::empty({m, n});
  const kernels::MatmulDims d = plain_dims(m, k, n);
  for (auto _ : state) kernels::cpu::matmul(a.data<float>(), b.data<float>(), nullptr, c.data<float>(), d);
  set_flops(state, 2.0 * double(m) * double(n) * double(k));
}

void BM_matmul_f32_frugal_op(benchmark::State& state) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  Tensor a = filled({m, k}), b = filled({k, n});
  for (auto _ : state) benchmark::DoNotOptimize(matmul(a, b));  // allocates its output each time
  set_flops(state, 2.0 * double(m) * double(n) * double(k));
}

void BM_matmul_bf16_frugal_kernel(benchmark::State& state) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  Tensor a = filled({m, k}, DType::bf16), b = filled({k, n}, DType::bf16), c = Tensor::empty({m, n});
  const kernels::MatmulDims d = plain_dims(m, k, n);
  for (auto _ : state) kernels::cpu::matmul_bf16(a.data<bf16_t>(), b.data<bf16_t>(), nullptr, c.data<float>(), d);
  set_flops(state, 2.0 * double(m) * double(n) * double(k));
}

// int8: quantized operands (b stored transposed, as a Linear weight), per-row scales of a and
// per-tensor scale of b, the f32 epilogue included: what int8 inference and int8-mixed training run.
void BM_matmul_s8_frugal_kernel(benchmark::State& state) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  std::vector<int8_t> a(size_t(m * k)), b(size_t(k * n));
  for (size_t i = 0; i < a.size(); ++i) a[i] = int8_t(int(i * 7919 % 255) - 127);
  for (size_t i = 0; i < b.size(); ++i) b[i] = int8_t(int(i * 104729 % 255) - 127);
  std::vector<float> rows(size_t(m), 0.01f), c(size_t(m * n));
  const float col = 0.02f;
  kernels::MatmulDims d = plain_dims(m, k, n);
  d.transpose_b = true, d.ldb = k;
  kernels::Int8Epilogue e;
  e.row_scale = rows.data(), e.col_scale = &col;
  for (auto _ : state) kernels::cpu::matmul_s8(a.data(), b.data(), c.data(), d, e);
  set_flops(state, 2.0 * double(m) * double(n) * double(k));
}

void matmul_shapes(benchmark::internal::Benchmark* b) {
  // The last two: the CNN classifier's backward (grad_x, and dW with K = batch) and forward.
  b->Args({1024, 1024, 1024})->Args({2048, 2048, 2048})->Args({256, 784, 1024})->Args({128, 128, 3136})->Args({128, 3136, 128})->UseRealTime()->Unit(benchmark::kMillisecond);
}

BENCHMARK(BM_matmul_f32_raw_onednn)->Apply(matmul_shapes);
BENCHMARK(BM_matmul_f32_frugal_kernel)->Apply(matmul_shapes);
BENCHMARK(BM_matmul_f32_frugal_op)->Apply(matmul_shapes);
BENCHMARK(BM_matmul_bf16_raw_onednn)->Apply(matmul_shapes);
BENCHMARK(BM_matmul_bf16_frugal_kernel)->Apply(matmul_shapes);
BENCHMARK(BM_matmul_s8_frugal_kernel)->Apply(matmul_shapes);

// ---- convolution: N=32, 64 -> 64 channels, 56x56, 3x3, padding 1 ----

constexpr int64_t kN = 32, kC = 64, kO = 64, kH = 56, kW = 56;
constexpr double kConvFlops = 2.0 * kN * kO * kC * 9 * kH * kW;

kernels::Conv2dDims conv_dims() {
  kernels::Conv2dDims d;
  d.n = kN, d.c = kC, d.h = kH, d.w = kW, d.o = kO, d.kernel_h = 3, d.kernel_w = 3, d.out_h = kH, d.out_w = kW;
  d.padding_h = 1, d.padding_w = 1;
  return d;
}

// Raw oneDNN with every operand already in the layout the primitive chose ("any"): the ceiling.
// With nchw_io, the loop also reorders NCHW input and output, as any NCHW framework must.
void raw_conv(benchmark::State& state, dt type, bool nchw_io) {
  dnnl::memory::desc x({kN, kC, kH, kW}, type, tag::any), w({kO, kC, 3, 3}, type, tag::any),
      y({kN, kO, kH, kW}, dt::f32, tag::any);
  dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, x, w, y,
                                       {1, 1}, {1, 1}, {1, 1});
  dnnl::convolution_forward::primitive_desc pd(desc, engine());
  dnnl::convolution_forward primitive(pd);
  dnnl::memory xm(pd.src_desc(), engine()), wm(pd.weights_desc(), engine()), ym(pd.dst_desc(), engine());
  dnnl::memory x_user({{kN, kC, kH, kW}, type, tag::nchw}, engine()), y_user({{kN, kO, kH, kW}, dt::f32, tag::nchw}, engine());
  Tensor fill_x = filled({kN, kC, kH, kW}, type == dt::f32 ? DType::f32 : DType::bf16);
  std::memcpy(x_user.get_data_handle(), fill_x.raw_data(), fill_x.nbytes());
  dnnl::stream s(engine());
  dnnl::reorder(x_user, xm).execute(s, x_user, xm);
  std::memset(wm.get_data_handle(), 0, pd.weights_desc().get_size());
  dnnl::reorder to_inner(x_user, xm), to_user(ym, y_user);
  for (auto _ : state) {
    if (nchw_io) to_inner.execute(s, x_user, xm);
    primitive.execute(s, {{DNNL_ARG_SRC, xm}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DST, ym}});
    if (nchw_io) to_user.execute(s, ym, y_user);
    s.wait();
  }
  set_flops(state, kConvFlops);
}

void BM_conv_f32_raw_onednn_blocked(benchmark::State& state) { raw_conv(state, dt::f32, false); }
void BM_conv_f32_raw_onednn_nchw(benchmark::State& state) { raw_conv(state, dt::f32, true); }
void BM_conv_bf16_raw_onednn_blocked(benchmark::State& state) { raw_conv(state, dt::bf16, false); }
void BM_conv_bf16_raw_onednn_nchw(benchmark::State& state) { raw_conv(state, dt::bf16, true); }

void BM_conv_f32_frugal_kernel(benchmark::State& state) {
  Tensor x = filled({kN, kC, kH, kW}), w = filled({kO, kC, 3, 3}), y = Tensor::empty({kN, kO, kH, kW});
  const kernels::Conv2dDims d = conv_dims();
  for (auto _ : state) kernels::cpu::conv2d_forward(x.data<float>(), w.data<float>(), nullptr, y.data<float>(), d);
  set_flops(state, kConvFlops);
}

void BM_conv_f32_frugal_op(benchmark::State& state) {
  Tensor x = filled({kN, kC, kH, kW}), w = filled({kO, kC, 3, 3});
  Conv2dOptions options;
  options.padding_h = options.padding_w = 1;
  for (auto _ : state) benchmark::DoNotOptimize(conv2d(x, w, Tensor(), options));
  set_flops(state, kConvFlops);
}

void BM_conv_bf16_frugal_kernel(benchmark::State& state) {
  Tensor x = filled({kN, kC, kH, kW}, DType::bf16), w = filled({kO, kC, 3, 3}, DType::bf16);
  Tensor y = Tensor::empty({kN, kO, kH, kW});
  const kernels::Conv2dDims d = conv_dims();
  for (auto _ : state) kernels::cpu::conv2d_forward_bf16(x.data<bf16_t>(), w.data<bf16_t>(), nullptr, y.data<float>(), d);
  set_flops(state, kConvFlops);
}

#define CONV_BENCH(fn) BENCHMARK(fn)->UseRealTime()->Unit(benchmark::kMillisecond)
CONV_BENCH(BM_conv_f32_raw_onednn_blocked);
CONV_BENCH(BM_conv_f32_raw_onednn_nchw);
CONV_BENCH(BM_conv_f32_frugal_kernel);
CONV_BENCH(BM_conv_f32_frugal_op);
CONV_BENCH(BM_conv_bf16_raw_onednn_blocked);
CONV_BENCH(BM_conv_bf16_raw_onednn_nchw);
CONV_BENCH(BM_conv_bf16_frugal_kernel);


// ---- the CNN example's layers on channels-last operands: weight gradient, forward, data gradient ----
// arg 0: layer (0: 128 x 1 x 28 x 28 -> 32, 1: 128 x 32 x 14 x 14 -> 64), 3x3, padding 1, with bias.

kernels::Conv2dDims cnn_layer(int64_t layer) {
  kernels::Conv2dDims d;
  d.n = 128, d.c = layer == 0 ? 1 : 32, d.o = layer == 0 ? 32 : 64, d.h = d.w = layer == 0 ? 28 : 14;
  d.kernel_h = d.kernel_w = 3, d.padding_h = d.padding_w = 1, d.out_h = d.h, d.out_w = d.w;
  d.channels_last = true;
  return d;
}

double conv_flops(const kernels::Conv2dDims& d) {
  return 2.0 * double(d.n * d.out_h * d.out_w * d.o * d.c * d.kernel_h * d.kernel_w);
}

// oneDNN's NHWC backward-weights primitive with the weight gradient in its preferred layout (no
// reorder counted): what frugal used before its own kernel.
void raw_weight_grad(benchmark::State& state, dt type) {
  const kernels::Conv2dDims d = cnn_layer(state.range(0));
  dnnl::memory::desc x({d.n, d.c, d.h, d.w}, type, tag::nhwc), dy({d.n, d.o, d.out_h, d.out_w}, type, tag::nhwc),
      w_any({d.o, d.c, 3, 3}, type, tag::any), b({d.o}, dt::f32, tag::a);
  dnnl::convolution_forward::desc fdesc(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, x,
                                        w_any, b, dy, {1, 1}, {1, 1}, {1, 1});
  dnnl::convolution_forward::primitive_desc fpd(fdesc, engine());
  dnnl::memory::desc gw_any({d.o, d.c, 3, 3}, dt::f32, tag::any);
  dnnl::convolution_backward_weights::desc desc(dnnl::algorithm::convolution_direct, x, gw_any, b, dy, {1, 1},
                                                {1, 1}, {1, 1});
  dnnl::convolution_backward_weights::primitive_desc pd(desc, engine(), fpd);
  dnnl::convolution_backward_weights primitive(pd);
  dnnl::memory xm(x, engine()), dym(dy, engine()), gwm(pd.diff_weights_desc(), engine()), gbm(b, engine());
  const DType dtype = type == dt::f32 ? DType::f32 : DType::bf16;
  Tensor fill_x = filled({d.n * d.c * d.h * d.w}, dtype), fill_dy = filled({d.n * d.o * d.out_h * d.out_w}, dtype);
  std::memcpy(xm.get_data_handle(), fill_x.raw_data(), fill_x.nbytes());
  std::memcpy(dym.get_data_handle(), fill_dy.raw_data(), fill_dy.nbytes());
  dnnl::stream s(engine());
  for (auto _ : state) {
    primitive.execute(s, {{DNNL_ARG_SRC, xm}, {DNNL_ARG_DIFF_DST, dym}, {DNNL_ARG_DIFF_WEIGHTS, gwm},
                          {DNNL_ARG_DIFF_BIAS, gbm}});
    s.wait();
  }
  set_flops(state, conv_flops(d));
}

void frugal_weight_grad(benchmark::State& state, DType dtype) {
  const kernels::Conv2dDims d = cnn_layer(state.range(0));
  Tensor x = filled({d.n * d.c * d.h * d.w}, dtype), dy = filled({d.n * d.o * d.out_h * d.out_w}, dtype);
  Tensor gw = Tensor::empty({d.o, d.c, 3, 3}), gb = Tensor::empty({d.o});
  for (auto _ : state) {
    if (dtype == DType::f32)
      kernels::cpu::conv2d_backward_weights(x.data<float>(), dy.data<float>(), gw.data<float>(), gb.data<float>(), d);
    else
      kernels::cpu::conv2d_backward_weights_bf16(x.data<bf16_t>(), dy.data<bf16_t>(), gw.data<float>(),
                                                 gb.data<float>(), d);
  }
  set_flops(state, conv_flops(d));
}

// The forward of the first layer (1 -> 32 channels), output in the operand type as the CNN
// writes it: oneDNN's NHWC primitive against frugal's direct kernel.
void raw_forward(benchmark::State& state, dt type) {
  const kernels::Conv2dDims d = cnn_layer(state.range(0));
  dnnl::memory::desc x({d.n, d.c, d.h, d.w}, type, tag::nhwc), y({d.n, d.o, d.out_h, d.out_w}, type, tag::nhwc),
      w_any({d.o, d.c, 3, 3}, type, tag::any), b({d.o}, dt::f32, tag::a);
  dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, x,
                                       w_any, b, y, {1, 1}, {1, 1}, {1, 1});
  dnnl::convolution_forward::primitive_desc pd(desc, engine());
  dnnl::convolution_forward primitive(pd);
  dnnl::memory xm(x, engine()), wm(pd.weights_desc(), engine()), ym(y, engine()), bm(b, engine());
  const DType dtype = type == dt::f32 ? DType::f32 : DType::bf16;
  Tensor fill_x = filled({d.n * d.c * d.h * d.w}, dtype);
  std::memcpy(xm.get_data_handle(), fill_x.raw_data(), fill_x.nbytes());
  std::memset(wm.get_data_handle(), 0, pd.weights_desc().get_size());
  std::memset(bm.get_data_handle(), 0, b.get_size());
  dnnl::stream s(engine());
  for (auto _ : state) {
    primitive.execute(s, {{DNNL_ARG_SRC, xm}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_BIAS, bm}, {DNNL_ARG_DST, ym}});
    s.wait();
  }
  set_flops(state, conv_flops(d));
}

void frugal_forward(benchmark::State& state, DType dtype) {
  const kernels::Conv2dDims d = cnn_layer(state.range(0));
  Tensor x = filled({d.n * d.c * d.h * d.w}, dtype), w = filled({d.o, d.c, 3, 3}, dtype), b = filled({d.o});
  Tensor y = Tensor::empty({d.n * d.o * d.out_h * d.out_w}, dtype);
  for (auto _ : state) {
    if (dtype == DType::f32)
      kernels::cpu::conv2d_forward(x.data<float>(), w.data<float>(), b.data<float>(), y.data<float>(), d);
    else
      kernels::cpu::conv2d_forward_bf16(x.data<bf16_t>(), w.data<bf16_t>(), b.data<float>(), y.data<bf16_t>(), d);
  }
  set_flops(state, conv_flops(d));
}

// The data gradient of the second layer (f32): oneDNN's NHWC backward-data primitive (its fastest
// form on NHWC is the forward of the turned kernel, within 10-20% of it) against frugal's path
// (Winograd F(2x2, 3x3) as a forward of the turned kernel).
void BM_data_grad_f32_raw_onednn(benchmark::State& state) {
  const kernels::Conv2dDims d = cnn_layer(1);
  dnnl::memory::desc dx({d.n, d.c, d.h, d.w}, dt::f32, tag::nhwc), dy({d.n, d.o, d.out_h, d.out_w}, dt::f32, tag::nhwc),
      w_any({d.o, d.c, 3, 3}, dt::f32, tag::any);
  dnnl::convolution_forward::desc fdesc(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, dx,
                                        w_any, dy, {1, 1}, {1, 1}, {1, 1});
  dnnl::convolution_forward::primitive_desc fpd(fdesc, engine());
  dnnl::convolution_backward_data::desc desc(dnnl::algorithm::convolution_direct, dx, w_any, dy, {1, 1}, {1, 1},
                                             {1, 1});
  dnnl::convolution_backward_data::primitive_desc pd(desc, engine(), fpd);
  dnnl::convolution_backward_data primitive(pd);
  dnnl::memory dxm(dx, engine()), dym(dy, engine()), wm(pd.weights_desc(), engine());
  Tensor fill_dy = filled({d.n * d.o * d.out_h * d.out_w});
  std::memcpy(dym.get_data_handle(), fill_dy.raw_data(), fill_dy.nbytes());
  std::memset(wm.get_data_handle(), 0, pd.weights_desc().get_size());
  dnnl::stream s(engine());
  for (auto _ : state) {
    primitive.execute(s, {{DNNL_ARG_DIFF_DST, dym}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DIFF_SRC, dxm}});
    s.wait();
  }
  set_flops(state, conv_flops(d));
}

void BM_data_grad_f32_frugal(benchmark::State& state) {
  const kernels::Conv2dDims d = cnn_layer(1);
  Tensor dy = filled({d.n * d.o * d.out_h * d.out_w}), w = filled({d.o, d.c, 3, 3});
  Tensor dx = Tensor::empty({d.n * d.c * d.h * d.w});
  for (auto _ : state) kernels::cpu::conv2d_backward_data(dy.data<float>(), w.data<float>(), dx.data<float>(), d);
  set_flops(state, conv_flops(d));
}
BENCHMARK(BM_data_grad_f32_raw_onednn)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_data_grad_f32_frugal)->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_forward_f32_raw_onednn(benchmark::State& state) { raw_forward(state, dt::f32); }
void BM_forward_f32_frugal(benchmark::State& state) { frugal_forward(state, DType::f32); }
void BM_forward_bf16_raw_onednn(benchmark::State& state) { raw_forward(state, dt::bf16); }
void BM_forward_bf16_frugal(benchmark::State& state) { frugal_forward(state, DType::bf16); }
#define FORWARD_BENCH(fn) BENCHMARK(fn)->Arg(0)->Arg(1)->ArgName("layer")->UseRealTime()->Unit(benchmark::kMicrosecond)
FORWARD_BENCH(BM_forward_f32_raw_onednn);
FORWARD_BENCH(BM_forward_f32_frugal);
FORWARD_BENCH(BM_forward_bf16_raw_onednn);
FORWARD_BENCH(BM_forward_bf16_frugal);

void BM_weight_grad_f32_raw_onednn(benchmark::State& state) { raw_weight_grad(state, dt::f32); }
void BM_weight_grad_f32_frugal(benchmark::State& state) { frugal_weight_grad(state, DType::f32); }
void BM_weight_grad_bf16_raw_onednn(benchmark::State& state) { raw_weight_grad(state, dt::bf16); }
void BM_weight_grad_bf16_frugal(benchmark::State& state) { frugal_weight_grad(state, DType::bf16); }
#define WEIGHT_GRAD_BENCH(fn) BENCHMARK(fn)->Arg(0)->Arg(1)->ArgName("layer")->UseRealTime()->Unit(benchmark::kMicrosecond)
WEIGHT_GRAD_BENCH(BM_weight_grad_f32_raw_onednn);
WEIGHT_GRAD_BENCH(BM_weight_grad_f32_frugal);
WEIGHT_GRAD_BENCH(BM_weight_grad_bf16_raw_onednn);
WEIGHT_GRAD_BENCH(BM_weight_grad_bf16_frugal);

}  // namespace
}  // namespace frugal

BENCHMARK_MAIN();
