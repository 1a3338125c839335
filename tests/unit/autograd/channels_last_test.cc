// Channels-last tensors through convolution, batch norm (with and without the fused ReLU) and 2x2
// max pooling: each op gives channels-last output for channels-last input, and
// the same values as on packed NCHW input (fp32 and bf16-mixed), which the other tests check
// against the reference kernels. Also the layout predicate and the conversion itself.
#include <gtest/gtest.h>

#include <functional>

#include "frugal/autograd/autograd.h"
#include "frugal/autograd/ops.h"
#include "frugal/autograd/precision.h"
#include "test_util.h"

namespace frugal {
namespace {
using testing::all_close;
using testing::random_tensor;
using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

TEST(ChannelsLast, LayoutPredicateAndConversion) {
  Tensor packed = random_tensor({2, 3, 4, 5}, 1);
  EXPECT_FALSE(is_channels_last(packed));
  Tensor cl = to_channels_last(packed);
  EXPECT_TRUE(is_channels_last(cl));
  EXPECT_FALSE(cl.is_contiguous());
  EXPECT_EQ(cl.shape(), packed.shape());
  EXPECT_EQ(cl.strides(), (Strides{60, 1, 15, 3}));
  EXPECT_TRUE(testing::same_bits(cl.contiguous(), packed));
  EXPECT_TRUE(to_channels_last(cl).same(cl));  // no copy when already channels-last
  // One channel, or 1x1 images: packed NCHW is channels-last too.
  EXPECT_TRUE(is_channels_last(random_tensor({2, 1, 4, 5}, 2)));
  EXPECT_TRUE(is_channels_last(random_tensor({2, 6, 1, 1}, 3)));
  EXPECT_FALSE(is_channels_last(random_tensor({2, 3, 4}, 4)));
}

struct PathRun {
  Tensor out;
  std::vector<Tensor> grads;
};

// fn on leaf copies of inputs, the first one in the given layout; backward of a fixed gradient
// given packed (as a flatten's backward gives it) or channels-last.
PathRun run(const Fn& fn, const std::vector<Tensor>& inputs, bool channels_last, bool grad_channels_last) {
  std::vector<Tensor> leaves;
  for (size_t i = 0; i < inputs.size(); ++i) {
    Tensor leaf = i == 0 && channels_last ? to_channels_last(inputs[i].clone()) : inputs[i].clone();
    leaf.set_requires_grad(true);
    leaves.push_back(leaf);
  }
  PathRun r;
  r.out = fn(leaves);
  Tensor g = random_tensor(r.out.shape(), 77);
  autograd::backward(r.out, grad_channels_last ? to_channels_last(g) : g);
  for (const Tensor& leaf : leaves) r.grads.push_back(leaf.grad());
  return r;
}

void expect_layouts_agree(const Fn& fn, const std::vector<Tensor>& inputs, const std::string& what, double tol) {
  for (bool grad_cl : {false, true}) {
    PathRun packed = run(fn, inputs, false, grad_cl), cl = run(fn, inputs, true, grad_cl);
    const std::string label = what + (grad_cl ? ", channels-last gradient" : ", packed gradient");
    EXPECT_TRUE(is_channels_last(cl.out)) << label << ": output " << shape_str(cl.out.strides());
    EXPECT_TRUE(all_close(cl.out, packed.out, tol, tol)) << label << " forward";
    for (size_t i = 0; i < inputs.size(); ++i)
      EXPECT_TRUE(all_close(cl.grads[i], packed.grads[i], tol, tol)) << label << " gradient " << i;
  }
}

TEST(ChannelsLast, Conv2dMatchesPackedLayout) {
  for (Precision precision : {Precision::fp32, Precision::bf16_mixed})
    for (int64_t c : {1, 8}) {
      PrecisionGuard guard(precision);
      Conv2dOptions o;
      o.padding_h = o.padding_w = 1;
      Tensor x = random_tensor({4, c, 9, 7}, 10), w = random_tensor({16, c, 3, 3}, 11), b = random_tensor({16}, 12);
      // bf16-mixed: both layouts round the same operands, only the f32 summation order may differ.
      expect_layouts_agree([o](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], in[2], o); }, {x, w, b},
                           std::string(precision == Precision::fp32 ? "fp32" : "bf16") + " conv c=" + std::to_string(c),
                           precision == Precision::fp32 ? 1e-5 : 1e-4);
    }
}

TEST(ChannelsLast, BatchNormAndFusedReluMatchPackedLayout) {
  for (bool relu : {false, true})
    for (bool training : {true, false}) {
      Tensor x = random_tensor({6, 24, 5, 7}, 20, DType::f32, -2.0, 3.0);
      Tensor w = random_tensor({24}, 21, DType::f32, 0.5, 1.5), b = random_tensor({24}, 22);
      Tensor rm = random_tensor({24}, 23), rv = random_tensor({24}, 24, DType::f32, 0.5, 2.0);
      Fn fn = [&](const std::vector<Tensor>& in) {
        Tensor m = rm.clone(), v = rv.clone();
        return relu ? batch_norm_relu(in[0], in[1], in[2], m, v, training)
                    : batch_norm(in[0], in[1], in[2], m, v, training);
      };
      expect_layouts_agree(fn, {x, w, b},
                           std::string(relu ? "batch_norm_relu" : "batch_norm") + (training ? " training" : " eval"),
                           1e-5);
    }
  // The running statistics move the same way (within rounding) in both layouts.
  Tensor x = random_tensor({6, 24, 5, 7}, 25);
  Tensor rm1 = Tensor::zeros({24}), rv1 = Tensor::ones({24}), rm2 = Tensor::zeros({24}), rv2 = Tensor::ones({24});
  batch_norm(x, Tensor(), Tensor(), rm1, rv1, true);
  batch_norm(to_channels_last(x), Tensor(), Tensor(), rm2, rv2, true);
  EXPECT_TRUE(all_close(rm2, rm1, 1e-6, 1e-6));
  EXPECT_TRUE(all_close(rv2, rv1, 1e-6, 1e-6));
}

TEST(ChannelsLast, MaxPool2x2MatchesPackedLayoutExactly) {
  for (Shape shape : std::vector<Shape>{{3, 16, 8, 8}, {2, 5, 7, 9}, {2, 33, 2, 3}}) {
    Tensor x = random_tensor(shape, 30);
    float* p = x.data<float>();
    for (int64_t i = 0; i < x.numel(); i += 5) p[i] = p[i + 1 < x.numel() ? i + 1 : i];  // ties
    expect_layouts_agree([](const std::vector<Tensor>& in) { return max_pool2d(in[0], Pool2dOptions{}); }, {x},
                         "max_pool2d " + shape_str(shape), 0.0);
  }
}

// batch_norm_relu_max_pool2x2 against the three ops in sequence on the same channels-last input:
// output, every gradient and the running statistics bit for bit (odd sizes drop a row and column).
TEST(ChannelsLast, FusedBatchNormReluPoolIsBitIdenticalToTheOps) {
  for (Shape shape : std::vector<Shape>{{4, 24, 8, 8}, {3, 37, 7, 9}, {2, 64, 2, 2}, {2, 4100, 2, 3}})
    for (bool training : {true, false})
      for (bool grad_cl : {false, true}) {
        const int64_t C = shape[1];
        Tensor x = random_tensor(shape, 50, DType::f32, -2.0, 3.0);
        Tensor w = random_tensor({C}, 51, DType::f32, -1.0, 1.5), b = random_tensor({C}, 52);
        Tensor rm = random_tensor({C}, 53), rv = random_tensor({C}, 54, DType::f32, 0.5, 2.0);
        Tensor rm1 = rm.clone(), rv1 = rv.clone(), rm2 = rm.clone(), rv2 = rv.clone();
        Fn ops = [&](const std::vector<Tensor>& in) {
          return max_pool2d(batch_norm_relu(in[0], in[1], in[2], rm1, rv1, training), Pool2dOptions{});
        };
        Fn fused = [&](const std::vector<Tensor>& in) {
          return batch_norm_relu_max_pool2x2(in[0], in[1], in[2], rm2, rv2, training);
        };
        PathRun a = run(ops, {x, w, b}, true, grad_cl), f = run(fused, {x, w, b}, true, grad_cl);
        const std::string what = shape_str(shape) + (training ? " training" : " eval") + (grad_cl ? " cl grad" : "");
        EXPECT_TRUE(is_channels_last(f.out)) << what;
        EXPECT_TRUE(testing::same_bits(f.out, a.out)) << what << " forward";
        for (size_t i = 0; i < 3; ++i) EXPECT_TRUE(testing::same_bits(f.grads[i], a.grads[i])) << what << " grad " << i;
        EXPECT_TRUE(testing::same_bits(rm2, rm1)) << what;
        EXPECT_TRUE(testing::same_bits(rv2, rv1)) << what;
      }
}

// bf16 channels-last input (conv2d's bf16_output): every value computed in f32 as for the input's
// f32 widening, so against the f32 op on that widening the output, the parameters' gradients and
// the running statistics agree bit for bit and the input's gradient is the f32 one rounded to bf16.
// Shapes cover whole-register channel counts (the AVX-512 rows) and others.
TEST(ChannelsLast, FusedBatchNormReluPoolReadsBf16Input) {
  for (Shape shape : std::vector<Shape>{{4, 32, 8, 8}, {3, 37, 7, 9}, {2, 64, 6, 5}, {2, 16, 2, 2}})
    for (bool training : {true, false}) {
      const int64_t C = shape[1];
      Tensor x16 = to_channels_last(random_tensor(shape, 60, DType::f32, -2.0, 3.0).to(DType::bf16));
      Tensor x32 = x16.to(DType::f32);
      Tensor w = random_tensor({C}, 61, DType::f32, -1.0, 1.5), b = random_tensor({C}, 62);
      Tensor rm = random_tensor({C}, 63), rv = random_tensor({C}, 64, DType::f32, 0.5, 2.0);
      Tensor rm16 = rm.clone(), rv16 = rv.clone(), rm32 = rm.clone(), rv32 = rv.clone();
      auto pass = [&](const Tensor& input, Tensor& run_mean, Tensor& run_var) {
        Tensor xl = to_channels_last(input.clone()), wl = w.clone(), bl = b.clone();
        for (Tensor* t : {&xl, &wl, &bl}) t->set_requires_grad(true);
        PathRun r;
        r.out = batch_norm_relu_max_pool2x2(xl, wl, bl, run_mean, run_var, training);
        autograd::backward(r.out, random_tensor(r.out.shape(), 65));
        r.grads = {xl.grad(), wl.grad(), bl.grad()};
        return r;
      };
      ASSERT_TRUE(is_channels_last(x16) && x16.dtype() == DType::bf16);
      PathRun narrow = pass(x16, rm16, rv16), wide = pass(x32, rm32, rv32);
      const std::string what = shape_str(shape) + (training ? " training" : " eval");
      EXPECT_EQ(narrow.out.dtype(), DType::f32) << what;
      EXPECT_TRUE(testing::same_bits(narrow.out, wide.out)) << what << " forward";
      EXPECT_EQ(narrow.grads[0].dtype(), DType::bf16) << what;
      EXPECT_TRUE(testing::same_bits(narrow.grads[0], wide.grads[0].to(DType::bf16))) << what << " grad x";
      EXPECT_TRUE(testing::same_bits(narrow.grads[1], wide.grads[1])) << what << " grad weight";
      EXPECT_TRUE(testing::same_bits(narrow.grads[2], wide.grads[2])) << what << " grad bias";
      EXPECT_TRUE(testing::same_bits(rm16, rm32)) << what;
      EXPECT_TRUE(testing::same_bits(rv16, rv32)) << what;
    }
  // Anything but channels-last bf16 (N, C, H, W) is refused with a message, not misread.
  Tensor packed = random_tensor({2, 3, 4, 4}, 66).to(DType::bf16);
  Tensor w = Tensor::ones({3}), b = Tensor::zeros({3}), rm = Tensor::zeros({3}), rv = Tensor::ones({3});
  EXPECT_THROW(batch_norm_relu_max_pool2x2(packed, w, b, rm, rv, true), InputError);
  Tensor cl = to_channels_last(random_tensor({2, 3, 4, 4}, 67).to(DType::bf16));
  EXPECT_THROW(batch_norm_relu_max_pool2x2(cl, w.to(DType::bf16), b, rm, rv, true), InputError);
}

// conv2d's bf16_output in bf16-mixed: y is the f32 output rounded to bf16 (channels-last), and a
// bf16 gradient gives the same gradients as the f32 path given that gradient's f32 widening (the
// f32 path rounds its gradient to exactly those bf16 values). Ignored in fp32 and on NCHW input.
TEST(ChannelsLast, Conv2dBf16OutputIsTheRoundedOutput) {
  Conv2dOptions o;
  o.padding_h = o.padding_w = 1;
  Conv2dOptions narrow = o;
  narrow.bf16_output = true;
  for (int64_t c : {1, 8}) {
    PrecisionGuard guard(Precision::bf16_mixed);
    Tensor x = to_channels_last(random_tensor({4, c, 9, 7}, 70)), w = random_tensor({16, c, 3, 3}, 71);
    Tensor b = random_tensor({16}, 72);
    Tensor xa = to_channels_last(x.clone()), wa = w.clone(), ba = b.clone();
    Tensor xb = to_channels_last(x.clone()), wb = w.clone(), bb = b.clone();
    for (Tensor* t : {&xa, &wa, &ba, &xb, &wb, &bb}) t->set_requires_grad(true);
    Tensor y16 = conv2d(xa, wa, ba, narrow), y32 = conv2d(xb, wb, bb, o);
    EXPECT_EQ(y16.dtype(), DType::bf16);
    EXPECT_TRUE(is_channels_last(y16));
    EXPECT_TRUE(testing::same_bits(y16, y32.to(DType::bf16))) << "c=" << c;
    Tensor g16 = to_channels_last(random_tensor(y16.shape(), 73).to(DType::bf16));
    autograd::backward(y16, g16);
    autograd::backward(y32, g16.to(DType::f32));
    for (auto [a, e] : {std::pair<Tensor*, Tensor*>{&xa, &xb}, {&wa, &wb}, {&ba, &bb}})
      EXPECT_TRUE(testing::same_bits(a->grad(), e->grad())) << "c=" << c;
  }
  Tensor x = to_channels_last(random_tensor({2, 3, 5, 5}, 74)), w = random_tensor({16, 3, 3, 3}, 75);
  EXPECT_EQ(conv2d(x, w, Tensor(), narrow).dtype(), DType::f32) << "fp32 ignores bf16_output";
  PrecisionGuard guard(Precision::bf16_mixed);
  EXPECT_EQ(conv2d(random_tensor({2, 3, 5, 5}, 76), w, Tensor(), narrow).dtype(), DType::f32) << "NCHW input";
}

}  // namespace
}  // namespace frugal
