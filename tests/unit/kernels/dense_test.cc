// Fast dense kernels (oneDNN) against the reference kernels on random shapes: matmul with
// transposes, padded leading dimensions and broadcast batches; bf16 matmul and conv; convolution
// forward and both backwards with stride, padding, dilation, groups; max/avg/adaptive pooling.
#include <gtest/gtest.h>

#include <cmath>

#include "frugal/base/parallel.h"
#include "frugal/kernels/cpu/conv.h"
#include "frugal/kernels/cpu/dense.h"
#include "frugal/kernels/ref/dense.h"
#include "test_util.h"

namespace frugal {
namespace {
using kernels::Conv2dDims;
using kernels::MatmulDims;
using kernels::Pool2dDims;
using testing::all_close;
using testing::random_tensor;

// f32 tolerances from the brief: atol 1e-5, rtol 1e-4. Both paths round every product and sum in
// f32 (the reference once, at the end); the differences we see are far below these.
constexpr double kAtol = 1e-5, kRtol = 1e-4;

struct MatmulCase {
  int64_t batch, m, n, k;
  bool transpose_a, transpose_b;
  int64_t pad = 0;              // extra elements per stored row (leading dimension > width)
  bool broadcast_a = false, broadcast_b = false, bias = false;
};

std::string describe(const MatmulCase& c) {
  return "batch " + std::to_string(c.batch) + " m " + std::to_string(c.m) + " n " + std::to_string(c.n) + " k " +
         std::to_string(c.k) + (c.transpose_a ? " tA" : "") + (c.transpose_b ? " tB" : "") + " pad " +
         std::to_string(c.pad) + (c.broadcast_a ? " bcastA" : "") + (c.broadcast_b ? " bcastB" : "") +
         (c.bias ? " bias" : "");
}

// Storage and dims for one case: a and b as (batches, stored_rows, ld) buffers.
struct MatmulSetup {
  MatmulDims dims;
  Tensor a, b, bias;
  Shape c_shape;
};

MatmulSetup setup_matmul(const MatmulCase& c, uint64_t seed) {
  MatmulSetup s;
  MatmulDims& d = s.dims;
  d.batch = c.batch, d.m = c.m, d.n = c.n, d.k = c.k;
  d.transpose_a = c.transpose_a, d.transpose_b = c.transpose_b;
  const int64_t a_rows = c.transpose_a ? c.k : c.m, a_cols = c.transpose_a ? c.m : c.k;
  const int64_t b_rows = c.transpose_b ? c.n : c.k, b_cols = c.transpose_b ? c.k : c.n;
  d.lda = a_cols + c.pad, d.ldb = b_cols + c.pad, d.ldc = c.n + c.pad;
  const int64_t a_batches = c.broadcast_a ? 1 : c.batch, b_batches = c.broadcast_b ? 1 : c.batch;
  s.a = random_tensor({a_batches, a_rows, d.lda}, seed);
  s.b = random_tensor({b_batches, b_rows, d.ldb}, seed + 1);
  d.batch_stride_a = c.broadcast_a ? 0 : a_rows * d.lda;
  d.batch_stride_b = c.broadcast_b ? 0 : b_rows * d.ldb;
  d.batch_stride_c = c.m * d.ldc;
  if (c.bias) s.bias = random_tensor({c.n}, seed + 2);
  s.c_shape = {c.batch, c.m, d.ldc};
  return s;
}

// Keeps only the logical (batch, m, n) part of a c buffer with row stride ldc.
Tensor logical_c(const Tensor& c, int64_t n) { return c.slice_view(2, 0, n).contiguous(); }

TEST(DenseKernels, MatmulMatchesReference) {
  const std::vector<MatmulCase> cases = {
      {1, 1, 1, 1, false, false},       {1, 7, 13, 5, false, false},    {1, 7, 13, 5, true, false},
      {1, 7, 13, 5, false, true},       {1, 7, 13, 5, true, true},      {1, 33, 17, 29, true, true, 3},
      {1, 256, 384, 512, false, false}, {1, 256, 384, 512, false, true}, {3, 9, 11, 6, false, false},
      {4, 5, 8, 7, false, false, 0, false, true},                        // b shared: folded into rows
      {4, 5, 8, 7, true, false, 2, false, true},                         // b shared, a transposed
      {4, 5, 8, 7, false, true, 0, true, false},                         // a shared
      {2, 16, 10, 12, false, false, 1, false, false, true},              // fused bias, padded rows
      {1, 64, 100, 784, false, true, 0, false, false, true},             // linear-shaped
      {2, 3, 4, 0, false, false, 0, false, false, true},                 // empty sum: bias only
  };
  uint64_t seed = 10;
  for (const MatmulCase& c : cases) {
    MatmulSetup s = setup_matmul(c, seed += 3);
    Tensor fast = Tensor::zeros(s.c_shape), reference = Tensor::zeros(s.c_shape);
    const float* bias = c.bias ? s.bias.data<float>() : nullptr;
    kernels::cpu::matmul(s.a.data<float>(), s.b.data<float>(), bias, fast.data<float>(), s.dims);
    kernels::ref::matmul<float>(s.a.data<float>(), s.b.data<float>(), bias, reference.data<float>(), s.dims);
    EXPECT_TRUE(all_close(logical_c(fast, c.n), logical_c(reference, c.n), kAtol, kRtol)) << describe(c);
    // The padding of c (between rows) is not written.
    if (c.pad > 0) {
      EXPECT_EQ(fast.at({0, 0, c.n}), 0.0) << describe(c);
    }
  }
}

TEST(DenseKernels, MatmulIsDeterministicAcrossCalls) {
  MatmulSetup s = setup_matmul({2, 64, 48, 96, false, true}, 99);
  Tensor first = Tensor::empty(s.c_shape), second = Tensor::empty(s.c_shape);
  kernels::cpu::matmul(s.a.data<float>(), s.b.data<float>(), nullptr, first.data<float>(), s.dims);
  kernels::cpu::matmul(s.a.data<float>(), s.b.data<float>(), nullptr, second.data<float>(), s.dims);
  EXPECT_EQ(first.to_vector<float>(), second.to_vector<float>());
}

// Relative Frobenius error ||actual - expected|| / ||expected||.
double relative_error(const Tensor& actual, const Tensor& expected) {
  std::vector<double> a = actual.to_vector<double>(), e = expected.to_vector<double>();
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (a[i] - e[i]) * (a[i] - e[i]);
    norm += e[i] * e[i];
  }
  return std::sqrt(diff / norm);
}

TEST(DenseKernels, Bf16MatmulMatchesF32) {
  for (MatmulCase c : {MatmulCase{1, 7, 13, 5, false, false}, MatmulCase{1, 128, 96, 256, false, true},
                       MatmulCase{3, 33, 40, 64, true, false, 0, false, true, true}}) {
    MatmulSetup s = setup_matmul(c, 40);
    Tensor a16 = s.a.to(DType::bf16), b16 = s.b.to(DType::bf16);
    const float* bias = c.bias ? s.bias.data<float>() : nullptr;
    Tensor fast = Tensor::zeros(s.c_shape), exact = Tensor::zeros(s.c_shape), rounded = Tensor::zeros(s.c_shape);
    kernels::cpu::matmul_bf16(a16.data<bf16_t>(), b16.data<bf16_t>(), bias, fast.data<float>(), s.dims);
    kernels::ref::matmul<float>(s.a.data<float>(), s.b.data<float>(), bias, exact.data<float>(), s.dims);
    // Against f32 inputs: bf16 keeps 8 significant bits, so about 1e-2 relative.
    double error = relative_error(logical_c(fast, c.n), logical_c(exact, c.n));
    EXPECT_LT(error, 1e-2) << describe(c);
    EXPECT_GT(error, 0.0) << describe(c) << ": bf16 rounding should show";
    // Against the same bf16-rounded inputs multiplied in f32: only accumulation order differs.
    Tensor a_r = a16.to(DType::f32), b_r = b16.to(DType::f32);
    kernels::ref::matmul<float>(a_r.data<float>(), b_r.data<float>(), bias, rounded.data<float>(), s.dims);
    EXPECT_TRUE(all_close(logical_c(fast, c.n), logical_c(rounded, c.n), kAtol, kRtol)) << describe(c);
  }
}

struct ConvCase {
  int64_t n, c, h, w, o, kernel_h, kernel_w, stride_h, stride_w, padding_h, padding_w, dilation_h, dilation_w, groups;
};

Conv2dDims conv_dims(const ConvCase& c) {
  Conv2dDims d;
  d.n = c.n, d.c = c.c, d.h = c.h, d.w = c.w, d.o = c.o, d.kernel_h = c.kernel_h, d.kernel_w = c.kernel_w;
  d.stride_h = c.stride_h, d.stride_w = c.stride_w, d.padding_h = c.padding_h, d.padding_w = c.padding_w;
  d.dilation_h = c.dilation_h, d.dilation_w = c.dilation_w, d.groups = c.groups;
  d.out_h = (d.h + 2 * d.padding_h - d.dilation_h * (d.kernel_h - 1) - 1) / d.stride_h + 1;
  d.out_w = (d.w + 2 * d.padding_w - d.dilation_w * (d.kernel_w - 1) - 1) / d.stride_w + 1;
  return d;
}

std::string describe(const Conv2dDims& d) {
  return "x (" + std::to_string(d.n) + ", " + std::to_string(d.c) + ", " + std::to_string(d.h) + ", " +
         std::to_string(d.w) + ") o " + std::to_string(d.o) + " k " + std::to_string(d.kernel_h) + "x" +
         std::to_string(d.kernel_w) + " s " + std::to_string(d.stride_h) + "," + std::to_string(d.stride_w) + " p " +
         std::to_string(d.padding_h) + "," + std::to_string(d.padding_w) + " d " + std::to_string(d.dilation_h) + "," +
         std::to_string(d.dilation_w) + " g " + std::to_string(d.groups);
}

const std::vector<ConvCase> kConvCases = {
    {1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1},       // 1x1x1
    {2, 3, 9, 11, 5, 3, 3, 2, 2, 1, 1, 1, 1, 1},      // stride 2, padding
    {1, 4, 13, 10, 6, 3, 3, 1, 1, 2, 2, 2, 2, 1},     // dilation 2
    {2, 6, 7, 9, 4, 3, 3, 1, 1, 1, 1, 1, 1, 2},       // groups 2
    {2, 8, 15, 13, 8, 3, 3, 1, 1, 1, 1, 1, 1, 8},     // depthwise, odd spatial
    {3, 16, 7, 7, 32, 1, 1, 1, 1, 0, 0, 1, 1, 1},     // 1x1 kernel
    {2, 5, 11, 12, 7, 3, 5, 2, 1, 1, 2, 1, 1, 1},     // non-square kernel, stride and padding
    {4, 32, 28, 28, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1},   // blocked layouts and reorders
    {2, 64, 14, 14, 64, 3, 3, 2, 2, 1, 1, 1, 1, 4},   // groups on a blocked layout
};

TEST(DenseKernels, ConvForwardMatchesReference) {
  uint64_t seed = 100;
  for (const ConvCase& c : kConvCases) {
    const Conv2dDims d = conv_dims(c);
    Tensor x = random_tensor({d.n, d.c, d.h, d.w}, ++seed);
    Tensor weight = random_tensor({d.o, d.c / d.groups, d.kernel_h, d.kernel_w}, ++seed);
    Tensor bias = random_tensor({d.o}, ++seed);
    for (bool with_bias : {false, true}) {
      Tensor fast = Tensor::empty({d.n, d.o, d.out_h, d.out_w}), reference = Tensor::empty(fast.shape());
      const float* b = with_bias ? bias.data<float>() : nullptr;
      kernels::cpu::conv2d_forward(x.data<float>(), weight.data<float>(), b, fast.data<float>(), d);
      kernels::ref::conv2d_forward<float>(x.data<float>(), weight.data<float>(), b, reference.data<float>(), d);
      EXPECT_TRUE(all_close(fast, reference, kAtol, kRtol)) << describe(d) << (with_bias ? " bias" : "");
    }
  }
}

TEST(DenseKernels, ConvBackwardMatchesReference) {
  uint64_t seed = 200;
  for (const ConvCase& c : kConvCases) {
    const Conv2dDims d = conv_dims(c);
    Tensor x = random_tensor({d.n, d.c, d.h, d.w}, ++seed);
    Tensor weight = random_tensor({d.o, d.c / d.groups, d.kernel_h, d.kernel_w}, ++seed);
    Tensor grad_y = random_tensor({d.n, d.o, d.out_h, d.out_w}, ++seed);
    Tensor fast_x = Tensor::empty(x.shape()), ref_x = Tensor::empty(x.shape());
    kernels::cpu::conv2d_backward_data(grad_y.data<float>(), weight.data<float>(), fast_x.data<float>(), d);
    kernels::ref::conv2d_backward_data<float>(grad_y.data<float>(), weight.data<float>(), ref_x.data<float>(), d);
    EXPECT_TRUE(all_close(fast_x, ref_x, kAtol, kRtol)) << "grad x " << describe(d);

    for (bool with_bias : {false, true}) {
      Tensor fast_w = Tensor::empty(weight.shape()), ref_w = Tensor::empty(weight.shape());
      Tensor fast_b = Tensor::empty({d.o}), ref_b = Tensor::empty({d.o});
      kernels::cpu::conv2d_backward_weights(x.data<float>(), grad_y.data<float>(), fast_w.data<float>(),
                                            with_bias ? fast_b.data<float>() : nullptr, d);
      kernels::ref::conv2d_backward_weights<float>(x.data<float>(), grad_y.data<float>(), ref_w.data<float>(),
                                                   with_bias ? ref_b.data<float>() : nullptr, d);
      // The weight gradient reduces over K = N * OH * OW products (3136 in the largest case), far
      // longer than any forward reduction here. oneDNN sums them in f32, so its rounding error is a
      // random walk of K steps, each of the size of eps times the partial sum: atol grows like
      // sqrt(K). Elements near zero (cancelling sums) are where this shows, e.g. 3e-5 at K = 3136.
      const double k_scale = std::sqrt(double(d.n * d.out_h * d.out_w));
      EXPECT_TRUE(all_close(fast_w, ref_w, kAtol * k_scale, kRtol)) << "grad w " << describe(d);
      if (with_bias) {
        EXPECT_TRUE(all_close(fast_b, ref_b, kAtol * k_scale, kRtol)) << "grad b " << describe(d);
      }
    }
  }
}

TEST(DenseKernels, Bf16ConvMatchesF32) {
  for (size_t i : {1, 4, 7}) {
    const Conv2dDims d = conv_dims(kConvCases[i]);
    Tensor x = random_tensor({d.n, d.c, d.h, d.w}, 300 + i);
    Tensor weight = random_tensor({d.o, d.c / d.groups, d.kernel_h, d.kernel_w}, 310 + i);
    Tensor bias = random_tensor({d.o}, 320 + i);
    Tensor x16 = x.to(DType::bf16), w16 = weight.to(DType::bf16);
    Tensor fast = Tensor::empty({d.n, d.o, d.out_h, d.out_w}), exact = Tensor::empty(fast.shape()),
           rounded = Tensor::empty(fast.shape());
    kernels::cpu::conv2d_forward_bf16(x16.data<bf16_t>(), w16.data<bf16_t>(), bias.data<float>(), fast.data<float>(), d);
    kernels::ref::conv2d_forward<float>(x.data<float>(), weight.data<float>(), bias.data<float>(), exact.data<float>(), d);
    EXPECT_LT(relative_error(fast, exact), 1e-2) << describe(d);
    Tensor x_r = x16.to(DType::f32), w_r = w16.to(DType::f32);
    kernels::ref::conv2d_forward<float>(x_r.data<float>(), w_r.data<float>(), bias.data<float>(), rounded.data<float>(), d);
    EXPECT_TRUE(all_close(fast, rounded, kAtol, kRtol)) << describe(d);
  }
}

// The hand-written weight gradient of stride-1 channels-last convolutions (conv.h), and their
// data gradient (dense.cc runs it as a forward convolution), against the reference on the same
// operands: f32, and bf16 against the reference on the
// widened bf16 values (both sum f32 products, only the order differs). The cases cover every
// register block width (16 to 64 output channels, and a second block of 64), channel counts that
// are not a multiple of 16, odd output widths (bf16's last pixel pair half empty), padding 0 to 2,
// non-square kernels, and fewer images than the kernel's 8 blocks. The result does not depend on
// the thread count, bit for bit.
TEST(DenseKernels, ChannelsLastBackwardMatchesReference) {
  const std::vector<ConvCase> cases = {
      {16, 1, 28, 28, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1},   // the CNN's first layer
      {16, 32, 14, 14, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1},  // its second
      {3, 7, 9, 11, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1},     // odd width, 3 images
      {9, 17, 6, 5, 48, 3, 5, 1, 1, 0, 2, 1, 1, 1},     // 5 wide kernel, no vertical padding
      {2, 33, 5, 7, 80, 1, 1, 1, 1, 0, 0, 1, 1, 1},     // 1x1, 64 + 16 output channels
      {1, 3, 8, 9, 128, 5, 5, 1, 1, 2, 2, 1, 1, 1},     // two blocks of 64, one image
      {4, 2, 4, 3, 16, 3, 3, 1, 1, 2, 1, 1, 1, 1},      // padding wider than half the kernel
  };
  uint64_t seed = 600;
  for (const ConvCase& c : cases) {
    const Conv2dDims packed = conv_dims(c);
    Conv2dDims d = packed;
    d.channels_last = true;
    for (bool bf16 : {false, true}) {
      ASSERT_TRUE(kernels::cpu::conv_weight_grad_supported(d, bf16)) << describe(d);
      Tensor x = random_tensor({d.n, d.c, d.h, d.w}, ++seed), grad_y = random_tensor({d.n, d.o, d.out_h, d.out_w}, ++seed);
      if (bf16) x = x.to(DType::bf16).to(DType::f32), grad_y = grad_y.to(DType::bf16).to(DType::f32);
      Tensor ref_w = Tensor::empty({d.o, d.c, d.kernel_h, d.kernel_w}), ref_b = Tensor::empty({d.o});
      kernels::ref::conv2d_backward_weights<float>(x.data<float>(), grad_y.data<float>(), ref_w.data<float>(),
                                                   ref_b.data<float>(), packed);
      // (n, h, w, c) copies, in the operand type.
      const DType type = bf16 ? DType::bf16 : DType::f32;
      Tensor x_cl = x.permute_view({0, 2, 3, 1}).contiguous().to(type);
      Tensor g_cl = grad_y.permute_view({0, 2, 3, 1}).contiguous().to(type);
      Tensor runs[2][2];  // threads 1, 2 x (weight, bias)
      for (int threads : {1, 2}) {
        set_num_threads(threads);
        Tensor w = Tensor::empty(ref_w.shape()), b = Tensor::empty({d.o});
        if (bf16)
          kernels::cpu::conv2d_backward_weights_bf16(x_cl.data<bf16_t>(), g_cl.data<bf16_t>(), w.data<float>(),
                                                     b.data<float>(), d);
        else
          kernels::cpu::conv2d_backward_weights(x_cl.data<float>(), g_cl.data<float>(), w.data<float>(),
                                                b.data<float>(), d);
        runs[threads - 1][0] = w, runs[threads - 1][1] = b;
      }
      set_num_threads(0);
      const std::string what = describe(d) + (bf16 ? " bf16" : " f32");
      const double k_scale = std::sqrt(double(d.n * d.out_h * d.out_w));  // as in ConvBackwardMatchesReference
      EXPECT_TRUE(all_close(runs[1][0], ref_w, kAtol * k_scale, kRtol)) << "grad w " << what;
      EXPECT_TRUE(all_close(runs[1][1], ref_b, kAtol * k_scale, kRtol)) << "grad b " << what;
      EXPECT_TRUE(testing::same_bits(runs[0][0], runs[1][0])) << "threads " << what;
      EXPECT_TRUE(testing::same_bits(runs[0][1], runs[1][1])) << "threads " << what;
      // The data gradient (a forward convolution with the kernel turned: oneDNN or Winograd) on the same case.
      Tensor weight = random_tensor({d.o, d.c, d.kernel_h, d.kernel_w}, ++seed);
      if (bf16) weight = weight.to(DType::bf16).to(DType::f32);
      Tensor ref_x = Tensor::empty(x.shape()), grad_x = Tensor::empty({d.n, d.h, d.w, d.c});
      kernels::ref::conv2d_backward_data<float>(grad_y.data<float>(), weight.data<float>(), ref_x.data<float>(), packed);
      if (bf16) {
        Tensor w16 = weight.to(DType::bf16);
        kernels::cpu::conv2d_backward_data_bf16(g_cl.data<bf16_t>(), w16.data<bf16_t>(), grad_x.data<float>(), d);
      } else {
        kernels::cpu::conv2d_backward_data(g_cl.data<float>(), weight.data<float>(), grad_x.data<float>(), d);
      }
      EXPECT_TRUE(all_close(grad_x, ref_x.permute_view({0, 2, 3, 1}).contiguous(), kAtol, kRtol)) << "grad x " << what;
      // Without a bias gradient the weight gradient is the same.
      Tensor w = Tensor::empty(ref_w.shape());
      if (bf16)
        kernels::cpu::conv2d_backward_weights_bf16(x_cl.data<bf16_t>(), g_cl.data<bf16_t>(), w.data<float>(), nullptr, d);
      else
        kernels::cpu::conv2d_backward_weights(x_cl.data<float>(), g_cl.data<float>(), w.data<float>(), nullptr, d);
      EXPECT_TRUE(testing::same_bits(w, runs[1][0])) << "no bias " << what;
    }
  }
  // What the kernel leaves to oneDNN.
  Conv2dDims d = conv_dims({2, 4, 9, 9, 16, 3, 3, 2, 2, 1, 1, 1, 1, 1});
  d.channels_last = true;
  EXPECT_FALSE(kernels::cpu::conv_weight_grad_supported(d, false)) << "stride 2";
  d = conv_dims({2, 4, 9, 9, 24, 3, 3, 1, 1, 1, 1, 1, 1, 1});
  d.channels_last = true;
  EXPECT_FALSE(kernels::cpu::conv_weight_grad_supported(d, false)) << "24 output channels";
  d.o = 16, d.channels_last = false;
  EXPECT_FALSE(kernels::cpu::conv_weight_grad_supported(d, false)) << "NCHW";
}

// The hand-written forward of few-channel stride-1 convolutions (conv.h) against the reference
// on the same operands (bf16: the widened bf16 values), where each precision takes the shape:
// one to four input channels, single bf16 terms (a kernel row with an odd number of values),
// 16 to 64 output channels, padding 0 to 2. bf16 output is the f32 output rounded, bit for bit;
// an infinite input makes exactly the outputs that read it non-finite.
TEST(DenseKernels, ChannelsLastDirectForwardMatchesReference) {
  const std::vector<ConvCase> cases = {
      {16, 1, 28, 28, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1},  // the CNN's first layer
      {3, 3, 9, 11, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1},    // RGB (bf16 only: 27 f32 terms)
      {2, 1, 7, 6, 48, 5, 5, 1, 1, 2, 2, 1, 1, 1},     // 5x5 (bf16 only)
      {2, 2, 6, 7, 64, 3, 1, 1, 1, 1, 0, 1, 1, 1},     // 3x1, no horizontal padding
      {1, 1, 5, 5, 16, 1, 1, 1, 1, 0, 0, 1, 1, 1},     // 1x1: one term, alone in bf16
      {3, 4, 5, 4, 32, 2, 2, 1, 1, 1, 1, 1, 1, 1},     // even kernel, 16 f32 terms
  };
  uint64_t seed = 700;
  int ran[2] = {0, 0};
  for (const ConvCase& c : cases) {
    const Conv2dDims packed = conv_dims(c);
    Conv2dDims d = packed;
    d.channels_last = true;
    for (bool bf16 : {false, true}) {
      if (!kernels::cpu::conv_direct_supported(d, bf16)) continue;
      ++ran[bf16];
      const std::string what = describe(d) + (bf16 ? " bf16" : " f32");
      Tensor x = random_tensor({d.n, d.c, d.h, d.w}, ++seed), w = random_tensor({d.o, d.c, d.kernel_h, d.kernel_w}, ++seed);
      Tensor bias = random_tensor({d.o}, ++seed);
      if (bf16) x = x.to(DType::bf16).to(DType::f32), w = w.to(DType::bf16).to(DType::f32);
      for (bool with_inf : {false, true}) {
        // Inside the last image, away from its edges: every term of its neighbours runs into it.
        if (with_inf) x.data<float>()[((d.n - 1) * d.c + d.c - 1) * d.h * d.w + (d.h / 2) * d.w + d.w / 2] = INFINITY;
        Tensor ref = Tensor::empty({d.n, d.o, d.out_h, d.out_w});
        kernels::ref::conv2d_forward<float>(x.data<float>(), w.data<float>(), bias.data<float>(), ref.data<float>(),
                                            packed);
        Tensor ref_cl = ref.permute_view({0, 2, 3, 1}).contiguous();  // (n, out_h, out_w, o)
        Tensor x_cl = x.permute_view({0, 2, 3, 1}).contiguous();
        Tensor y = Tensor::empty(ref_cl.shape());
        if (bf16) {
          Tensor x16 = x_cl.to(DType::bf16), w16 = w.to(DType::bf16);
          Tensor y16 = Tensor::empty(ref_cl.shape(), DType::bf16);
          kernels::cpu::conv2d_forward_bf16(x16.data<bf16_t>(), w16.data<bf16_t>(), bias.data<float>(),
                                            y.data<float>(), d);
          kernels::cpu::conv2d_forward_bf16(x16.data<bf16_t>(), w16.data<bf16_t>(), bias.data<float>(),
                                            y16.data<bf16_t>(), d);
          EXPECT_TRUE(testing::same_bits(y16, y.to(DType::bf16))) << "bf16 output " << what;
        } else {
          kernels::cpu::conv2d_forward(x_cl.data<float>(), w.data<float>(), bias.data<float>(), y.data<float>(), d);
        }
        if (!with_inf) {
          EXPECT_TRUE(all_close(y, ref_cl, kAtol, kRtol)) << what;
          continue;
        }
        int64_t mismatched = 0, non_finite = 0;
        for (int64_t i = 0; i < y.numel(); ++i) {
          const bool finite = std::isfinite(y.data<float>()[i]), ref_finite = std::isfinite(ref_cl.data<float>()[i]);
          mismatched += finite != ref_finite;
          non_finite += !ref_finite;
        }
        EXPECT_EQ(mismatched, 0) << "non-finite outputs " << what;
        EXPECT_GT(non_finite, 0) << what;
      }
    }
  }
  EXPECT_EQ(ran[0], 4);
  EXPECT_EQ(ran[1], 6);
  Conv2dDims d = conv_dims({2, 32, 14, 14, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1});
  d.channels_last = true;
  EXPECT_FALSE(kernels::cpu::conv_direct_supported(d, true)) << "32 channels: oneDNN's";
}

// Winograd F(2x2, 3x3) (conv.h), the f32 forward of 3x3 stride-1 channels-last convolutions with
// 16-multiple channel counts, through it the data gradient, and the weight gradient by the
// transforms' adjoint, against the reference: every
// register-block width (64, 32 and 16 output channels), partial tiles at odd output sizes, padding
// 0 to 2, a last block of fewer tiles, with and without a bias; bit-identical at 1 and 2 threads;
// an infinite input leaves every output the reference makes non-finite non-finite (a tile's other
// outputs may turn NaN too: its transforms mix the tile's inputs).
TEST(DenseKernels, ChannelsLastWinogradMatchesReference) {
  const std::vector<ConvCase> cases = {
      {16, 32, 14, 14, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1},  // the CNN's second layer
      {3, 16, 9, 11, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1},    // odd output sizes: half tiles
      {2, 48, 7, 6, 80, 3, 3, 1, 1, 0, 0, 1, 1, 1},     // no padding, 64 + 16 output channels
      {1, 16, 5, 5, 16, 3, 3, 1, 1, 2, 2, 1, 1, 1},     // padding 2: 16 tiles, a block of 4
      {5, 64, 4, 3, 48, 3, 3, 1, 1, 1, 0, 1, 1, 1},     // 32 + 16 output channels, padding 1 x 0
  };
  uint64_t seed = 800;
  for (const ConvCase& c : cases) {
    const Conv2dDims packed = conv_dims(c);
    Conv2dDims d = packed;
    d.channels_last = true;
    ASSERT_TRUE(kernels::cpu::conv_winograd_supported(d)) << describe(d);
    Tensor x = random_tensor({d.n, d.c, d.h, d.w}, ++seed), w = random_tensor({d.o, d.c, 3, 3}, ++seed);
    Tensor bias = random_tensor({d.o}, ++seed);
    float& victim = x.data<float>()[((d.n - 1) * d.c + d.c / 2) * d.h * d.w + (d.h / 2) * d.w + d.w / 2];
    const float kept = victim;
    for (bool with_bias : {true, false}) {
      for (bool with_inf : {false, true}) {
        victim = with_inf ? INFINITY : kept;
        const std::string what = describe(d) + (with_bias ? " bias" : "") + (with_inf ? " inf" : "");
        const float* b = with_bias ? bias.data<float>() : nullptr;
        Tensor ref = Tensor::empty({d.n, d.o, d.out_h, d.out_w});
        kernels::ref::conv2d_forward<float>(x.data<float>(), w.data<float>(), b, ref.data<float>(), packed);
        Tensor ref_cl = ref.permute_view({0, 2, 3, 1}).contiguous();
        Tensor x_cl = x.permute_view({0, 2, 3, 1}).contiguous();
        Tensor y[2];
        for (int threads : {1, 2}) {
          set_num_threads(threads);
          y[threads - 1] = Tensor::empty(ref_cl.shape());
          kernels::cpu::conv2d_forward(x_cl.data<float>(), w.data<float>(), b, y[threads - 1].data<float>(), d);
        }
        set_num_threads(0);
        EXPECT_TRUE(testing::same_bits(y[0], y[1])) << "threads " << what;
        if (!with_inf) {
          EXPECT_TRUE(all_close(y[1], ref_cl, kAtol, kRtol)) << what;
          continue;
        }
        int64_t lost = 0, non_finite = 0;
        for (int64_t i = 0; i < ref_cl.numel(); ++i) {
          const bool ref_finite = std::isfinite(ref_cl.data<float>()[i]);
          non_finite += !ref_finite;
          lost += !ref_finite && std::isfinite(y[1].data<float>()[i]);
        }
        EXPECT_GT(non_finite, 0) << what;
        EXPECT_EQ(lost, 0) << what;
      }
    }
    victim = kept;
    // The weight gradient (the transforms' adjoint), at 1 and 2 threads, with and without the bias's.
    ASSERT_TRUE(kernels::cpu::conv_winograd_weight_grad_supported(d)) << describe(d);
    {
      Tensor grad_y = random_tensor({d.n, d.o, d.out_h, d.out_w}, ++seed);
      Tensor ref_w = Tensor::empty(w.shape()), ref_b = Tensor::empty({d.o});
      kernels::ref::conv2d_backward_weights<float>(x.data<float>(), grad_y.data<float>(), ref_w.data<float>(),
                                                   ref_b.data<float>(), packed);
      Tensor x_cl = x.permute_view({0, 2, 3, 1}).contiguous(), g_cl = grad_y.permute_view({0, 2, 3, 1}).contiguous();
      Tensor gw[2], gb[2];
      for (int threads : {1, 2}) {
        set_num_threads(threads);
        gw[threads - 1] = Tensor::empty(w.shape()), gb[threads - 1] = Tensor::empty({d.o});
        kernels::cpu::conv2d_backward_weights(x_cl.data<float>(), g_cl.data<float>(), gw[threads - 1].data<float>(),
                                              gb[threads - 1].data<float>(), d);
      }
      set_num_threads(0);
      const double k_scale = std::sqrt(double(d.n * d.out_h * d.out_w));  // as in ConvBackwardMatchesReference
      EXPECT_TRUE(all_close(gw[1], ref_w, kAtol * k_scale, kRtol)) << "grad w " << describe(d);
      EXPECT_TRUE(all_close(gb[1], ref_b, kAtol * k_scale, kRtol)) << "grad b " << describe(d);
      EXPECT_TRUE(testing::same_bits(gw[0], gw[1])) << "threads " << describe(d);
      EXPECT_TRUE(testing::same_bits(gb[0], gb[1])) << "threads " << describe(d);
      Tensor no_bias = Tensor::empty(w.shape());
      kernels::cpu::conv2d_backward_weights(x_cl.data<float>(), g_cl.data<float>(), no_bias.data<float>(), nullptr, d);
      EXPECT_TRUE(testing::same_bits(no_bias, gw[1])) << "no bias " << describe(d);
    }
    // The data gradient of the same shape runs as a Winograd forward when its channels allow.
    Conv2dDims back = d;
    back.c = d.o, back.o = d.c, back.h = d.out_h, back.w = d.out_w, back.out_h = d.h, back.out_w = d.w;
    back.padding_h = 2 - d.padding_h, back.padding_w = 2 - d.padding_w;
    if (!kernels::cpu::conv_winograd_supported(back)) continue;
    Tensor grad_y = random_tensor({d.n, d.o, d.out_h, d.out_w}, ++seed);
    Tensor ref_x = Tensor::empty(x.shape()), grad_x = Tensor::empty({d.n, d.h, d.w, d.c});
    kernels::ref::conv2d_backward_data<float>(grad_y.data<float>(), w.data<float>(), ref_x.data<float>(), packed);
    Tensor g_cl = grad_y.permute_view({0, 2, 3, 1}).contiguous();
    kernels::cpu::conv2d_backward_data(g_cl.data<float>(), w.data<float>(), grad_x.data<float>(), d);
    EXPECT_TRUE(all_close(grad_x, ref_x.permute_view({0, 2, 3, 1}).contiguous(), kAtol, kRtol))
        << "grad x " << describe(d);
  }
  // What the kernel leaves to oneDNN.
  Conv2dDims d = conv_dims({2, 32, 9, 9, 64, 3, 3, 2, 2, 1, 1, 1, 1, 1});
  d.channels_last = true;
  EXPECT_FALSE(kernels::cpu::conv_winograd_supported(d)) << "stride 2";
  d = conv_dims({2, 24, 9, 9, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1});
  d.channels_last = true;
  EXPECT_FALSE(kernels::cpu::conv_winograd_supported(d)) << "24 input channels";
  d = conv_dims({2, 32, 9, 9, 64, 5, 5, 1, 1, 2, 2, 1, 1, 1});
  d.channels_last = true;
  EXPECT_FALSE(kernels::cpu::conv_winograd_supported(d)) << "5x5";
  d = conv_dims({2, 32, 9, 9, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1});
  EXPECT_FALSE(kernels::cpu::conv_winograd_supported(d)) << "NCHW";
}

struct PoolCase {
  int64_t n, c, h, w, kernel_h, kernel_w, stride_h, stride_w, padding_h, padding_w;
  bool count_include_pad;
};

Pool2dDims pool_dims(const PoolCase& c) {
  Pool2dDims d;
  d.n = c.n, d.c = c.c, d.h = c.h, d.w = c.w, d.kernel_h = c.kernel_h, d.kernel_w = c.kernel_w;
  d.stride_h = c.stride_h, d.stride_w = c.stride_w, d.padding_h = c.padding_h, d.padding_w = c.padding_w;
  d.count_include_pad = c.count_include_pad;
  d.out_h = (d.h + 2 * d.padding_h - d.kernel_h) / d.stride_h + 1;
  d.out_w = (d.w + 2 * d.padding_w - d.kernel_w) / d.stride_w + 1;
  return d;
}

std::string describe(const Pool2dDims& d) {
  return "x (" + std::to_string(d.n) + ", " + std::to_string(d.c) + ", " + std::to_string(d.h) + ", " +
         std::to_string(d.w) + ") k " + std::to_string(d.kernel_h) + "x" + std::to_string(d.kernel_w) + " s " +
         std::to_string(d.stride_h) + "," + std::to_string(d.stride_w) + " p " + std::to_string(d.padding_h) + "," +
         std::to_string(d.padding_w) + (d.count_include_pad ? " include_pad" : " exclude_pad");
}

const std::vector<PoolCase> kPoolCases = {
    {1, 1, 2, 2, 2, 2, 2, 2, 0, 0, true},     {2, 3, 8, 8, 2, 2, 2, 2, 0, 0, true},
    {2, 3, 7, 9, 3, 3, 2, 2, 1, 1, true},     {2, 3, 7, 9, 3, 3, 2, 2, 1, 1, false},
    {1, 4, 9, 6, 3, 2, 2, 1, 1, 0, true},     {1, 4, 9, 6, 3, 2, 2, 1, 1, 1, false},
    {2, 5, 11, 13, 3, 3, 1, 1, 1, 1, false},  {4, 16, 28, 28, 2, 2, 2, 2, 0, 0, true},
    {2, 3, 5, 5, 2, 2, 2, 2, 0, 0, true},     // odd size: the last row and column are dropped
};

// Max pooling forward and backward on the fast kernels and on the reference ones; the fast
// backward writes over a gradient buffer prefilled with 5, so an element it skips shows.
struct MaxPoolRuns {
  Tensor fast, reference, fast_x, ref_x;
};
MaxPoolRuns run_max_pool(const Pool2dDims& d, const Tensor& x, const Tensor& grad_y) {
  MaxPoolRuns r{Tensor::empty(grad_y.shape()), Tensor::empty(grad_y.shape()), Tensor::full(x.shape(), 5.0),
                Tensor::empty(x.shape())};
  Tensor workspace = Tensor::empty({int64_t(kernels::cpu::max_pool2d_workspace_bytes(d))}, DType::u8);
  Tensor argmax = Tensor::empty(grad_y.shape(), DType::i32);
  kernels::cpu::max_pool2d_forward(x.data<float>(), r.fast.data<float>(), workspace.data<uint8_t>(), d);
  kernels::ref::max_pool2d_forward<float>(x.data<float>(), r.reference.data<float>(), argmax.data<int32_t>(), d);
  kernels::cpu::max_pool2d_backward(grad_y.data<float>(), workspace.data<uint8_t>(), r.fast_x.data<float>(), d);
  kernels::ref::max_pool2d_backward<float>(grad_y.data<float>(), argmax.data<int32_t>(), r.ref_x.data<float>(), d);
  return r;
}

TEST(DenseKernels, MaxPoolMatchesReference) {
  uint64_t seed = 400;
  for (const PoolCase& c : kPoolCases) {
    const Pool2dDims d = pool_dims(c);
    Tensor x = random_tensor({d.n, d.c, d.h, d.w}, ++seed);
    Tensor grad_y = random_tensor({d.n, d.c, d.out_h, d.out_w}, ++seed);
    MaxPoolRuns r = run_max_pool(d, x, grad_y);
    EXPECT_TRUE(all_close(r.fast, r.reference, 0, 0)) << describe(d);
    EXPECT_TRUE(all_close(r.fast_x, r.ref_x, 1e-6, 1e-6)) << describe(d);
  }
}

// The 2x2 stride-2 kernel (pool.h) on ties and NaNs, row lengths around its 16-output vectors:
// the reference's winner (first maximum, NaN first) and so the same gradient, exactly.
TEST(DenseKernels, MaxPool2x2TiesAndNaNsFollowReference) {
  uint64_t seed = 450;
  for (int64_t w : {2, 3, 14, 15, 30, 32, 33, 64, 70})
    for (int64_t h : {2, 5}) {
      const Pool2dDims d = pool_dims(PoolCase{3, 2, h, w, 2, 2, 2, 2, 0, 0, true});
      Tensor x = random_tensor({d.n, d.c, d.h, d.w}, ++seed, DType::f32, 0.0, 3.0);
      float* xp = x.data<float>();
      for (int64_t i = 0; i < x.numel(); ++i) {
        xp[i] = std::floor(xp[i]);  // ties everywhere: values 0, 1, 2
        if (i % 7 == 3) xp[i] = std::nanf("");
      }
      MaxPoolRuns r = run_max_pool(d, x, random_tensor({d.n, d.c, d.out_h, d.out_w}, ++seed));
      EXPECT_TRUE(testing::same_bits(r.fast, r.reference)) << describe(d);
      EXPECT_TRUE(testing::same_bits(r.fast_x, r.ref_x)) << describe(d);
    }
}

TEST(DenseKernels, AvgPoolMatchesReference) {
  uint64_t seed = 500;
  for (const PoolCase& c : kPoolCases) {
    const Pool2dDims d = pool_dims(c);
    Tensor x = random_tensor({d.n, d.c, d.h, d.w}, ++seed);
    Tensor grad_y = random_tensor({d.n, d.c, d.out_h, d.out_w}, ++seed);
    Tensor fast = Tensor::empty(grad_y.shape()), reference = Tensor::empty(grad_y.shape());
    kernels::cpu::avg_pool2d_forward(x.data<float>(), fast.data<float>(), d);
    kernels::ref::avg_pool2d_forward<float>(x.data<float>(), reference.data<float>(), d);
    EXPECT_TRUE(all_close(fast, reference, kAtol, kRtol)) << describe(d);
    Tensor fast_x = Tensor::empty(x.shape()), ref_x = Tensor::empty(x.shape());
    kernels::cpu::avg_pool2d_backward(grad_y.data<float>(), fast_x.data<float>(), d);
    kernels::ref::avg_pool2d_backward<float>(grad_y.data<float>(), ref_x.data<float>(), d);
    EXPECT_TRUE(all_close(fast_x, ref_x, kAtol, kRtol)) << describe(d);
  }
}

TEST(DenseKernels, AvgPoolDivisorsFollowPyTorch) {
  // x = ones (1, 1, 3, 3), kernel 3, stride 1, padding 1: the corner window holds 4 real inputs
  // out of 9 positions.
  Pool2dDims d = pool_dims({1, 1, 3, 3, 3, 3, 1, 1, 1, 1, true});
  Tensor x = Tensor::ones({1, 1, 3, 3}), y = Tensor::empty({1, 1, 3, 3});
  kernels::cpu::avg_pool2d_forward(x.data<float>(), y.data<float>(), d);
  EXPECT_NEAR(y.at({0, 0, 0, 0}), 4.0 / 9.0, 1e-7);
  EXPECT_NEAR(y.at({0, 0, 1, 1}), 1.0, 1e-7);
  d.count_include_pad = false;
  kernels::cpu::avg_pool2d_forward(x.data<float>(), y.data<float>(), d);
  EXPECT_NEAR(y.at({0, 0, 0, 0}), 1.0, 1e-7);
}

TEST(DenseKernels, AdaptiveAvgPoolMatchesReference) {
  struct Case { int64_t planes, h, w, out_h, out_w; };
  uint64_t seed = 600;
  for (Case c : {Case{1, 1, 1, 1, 1}, Case{6, 7, 9, 3, 4}, Case{4, 5, 5, 5, 5}, Case{3, 6, 6, 1, 1},
                 Case{2, 10, 7, 4, 3}, Case{5, 3, 4, 7, 6}, Case{64, 14, 14, 7, 7}}) {
    Tensor x = random_tensor({c.planes, c.h, c.w}, ++seed);
    Tensor grad_y = random_tensor({c.planes, c.out_h, c.out_w}, ++seed);
    Tensor fast = Tensor::empty(grad_y.shape()), reference = Tensor::empty(grad_y.shape());
    kernels::cpu::adaptive_avg_pool2d_forward(x.data<float>(), fast.data<float>(), c.planes, c.h, c.w, c.out_h, c.out_w);
    kernels::ref::adaptive_avg_pool2d_forward<float>(x.data<float>(), reference.data<float>(), c.planes, c.h, c.w,
                                                     c.out_h, c.out_w);
    EXPECT_TRUE(all_close(fast, reference, kAtol, kRtol));
    Tensor fast_x = Tensor::empty(x.shape()), ref_x = Tensor::empty(x.shape());
    kernels::cpu::adaptive_avg_pool2d_backward(grad_y.data<float>(), fast_x.data<float>(), c.planes, c.h, c.w, c.out_h,
                                               c.out_w);
    kernels::ref::adaptive_avg_pool2d_backward<float>(grad_y.data<float>(), ref_x.data<float>(), c.planes, c.h, c.w,
                                                      c.out_h, c.out_w);
    EXPECT_TRUE(all_close(fast_x, ref_x, kAtol, kRtol));
  }
  // PyTorch's bins for 5 -> 3: [0, 2), [1, 4), [3, 5).
  EXPECT_EQ(kernels::ref::adaptive_start(1, 5, 3), 1);
  EXPECT_EQ(kernels::ref::adaptive_end(1, 5, 3), 4);
  EXPECT_EQ(kernels::ref::adaptive_start(2, 5, 3), 3);
}

}  // namespace
}  // namespace frugal
