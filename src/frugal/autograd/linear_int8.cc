// linear in int8-mixed precision (SwitchBack, Wortsman et al. 2023): the forward and input-gradient
// products on the shared int8 matmul (kernels/cpu/int8.h), the weight gradient in bf16. The weight
// is quantized once per forward and its codes kept for backward, so dX reads the very W that y did.
// Limits: f32 only; per-tensor weight scale (an outlier weight coarsens the whole layer's step).
#include "frugal/autograd/linear_int8.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "frugal/autograd/autograd.h"
#include "frugal/autograd/flops.h"
#include "frugal/autograd/ops.h"
#include "frugal/autograd/precision.h"
#include "frugal/kernels/cpu/int8.h"
#include "frugal/kernels/kernels.h"
#include "frugal/kernels/ref/int8.h"

namespace frugal {
namespace dense_internal {
namespace {

using kernels::Int8Epilogue;
using kernels::MatmulDims;

// Largest |w|: the per-tensor scale's input, as the largest of the values' bits without their sign
// (the order of non-negative floats; an integer max vectorizes where a float one would not without
// -ffast-math). NaN, whose bits exceed inf's, propagates as a NaN scale (codes unspecified, outputs
// NaN), which the non-finite guard then reports as it would in fp32.
float absmax(const Tensor& w) {
  const float* p = w.data<float>();
  const int64_t n = w.numel();  // hoisted: numel() is a call the loop could not vectorize across
  uint32_t m = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, p + i, sizeof bits);
    m = std::max(m, bits & 0x7fffffffu);
  }
  float out;
  std::memcpy(&out, &m, sizeof out);
  return out;
}

void quantize_rows(const float* x, int64_t rows, int64_t cols, int8_t* q, float* scales) {
  if (kernels::reference_mode()) kernels::ref::quantize_rows_s8(x, rows, cols, cols, q, scales);
  else kernels::cpu::quantize_rows_s8(x, rows, cols, cols, q, scales);
}

void product_s8(const int8_t* a, const int8_t* b, float* c, const MatmulDims& d, const Int8Epilogue& e) {
  if (d.m <= 0 || d.n <= 0) return;
  if (kernels::reference_mode()) kernels::ref::matmul_s8(a, b, c, d, e);
  else kernels::cpu::matmul_s8(a, b, c, d, e);
  autograd::count_flops(2.0 * double(d.m) * double(d.n) * double(d.k));
}

}  // namespace

Tensor linear_int8(const Tensor& x, const Tensor& x_rows, const Tensor& weight, const Tensor& bias, bool relu) {
  const int64_t M = x_rows.size(0), in = weight.size(1), out_features = weight.size(0);
  const Shape lead(x.shape().begin(), x.shape().end() - 1);
  const Tensor w = weight.contiguous();  // (out, in)
  // W per tensor: one scale, codes kept for backward (out * in bytes).
  Tensor w_scale = Tensor::empty({1}, DType::f32);
  w_scale.data<float>()[0] = kernels::int8_scale(absmax(w));
  Tensor w_q = Tensor::empty({out_features, in}, DType::i8);  // (out, in)
  if (kernels::reference_mode()) kernels::ref::quantize_s8(w.data<float>(), w.numel(), w_scale.data<float>()[0], w_q.data<int8_t>());
  else kernels::cpu::quantize_s8(w.data<float>(), w.numel(), w_scale.data<float>()[0], w_q.data<int8_t>());

  Tensor y;
  if (!relu && autograd::skip_output({&x, &weight, &bias}, {&x, &weight})) {
    y = Tensor::empty({M, out_features}, DType::f32);
  } else {
    Tensor x_q = Tensor::empty({M, in}, DType::i8);      // (M, in)
    Tensor x_scales = Tensor::empty({M}, DType::f32);    // (M)
    quantize_rows(x_rows.data<float>(), M, in, x_q.data<int8_t>(), x_scales.data<float>());
    y = Tensor::empty({M, out_features}, DType::f32);    // (M, out) = x_q W_q^T, scaled, + b
    MatmulDims d;
    d.m = M, d.n = out_features, d.k = in, d.transpose_b = true, d.lda = in, d.ldb = in, d.ldc = out_features;
    Int8Epilogue e;
    e.row_scale = x_scales.data<float>();
    e.col_scale = w_scale.data<float>();
    e.bias = bias.defined() ? bias.contiguous().data<float>() : nullptr;
    e.relu = relu;
    product_s8(x_q.data<int8_t>(), w_q.data<int8_t>(), y.data<float>(), d, e);
  }
  y = y.view(with_last(lead, out_features));
  std::vector<Tensor> inputs{x, weight};
  if (bias.defined()) inputs.push_back(bias);
  if (!autograd::needs_grad(inputs)) return y;

  const bool need_x = x.requires_grad(), need_w = weight.requires_grad(), need_b = bias.defined() && bias.requires_grad();
  const bool reference = kernels::reference_mode();
  // dW's operand: x rounded to bf16 once (the fast path), or x itself for the reference matmul,
  // which rounds it under the int8-mixed precision as bf16-mixed does.
  const Tensor x_kept = !need_w ? Tensor() : reference ? x_rows.detach() : round_to_bf16(x_rows.data<float>(), M * in);
  const Tensor y_saved = relu ? y.detach() : Tensor();
  const Shape x_shape = x.shape();
  return autograd::record(y, relu ? "linear_relu" : "linear", inputs, [=](const Tensor& g) -> std::vector<Tensor> {
    PrecisionGuard same_precision(Precision::int8_mixed);
    kernels::ReferenceModeGuard same_kernels(reference);
    const Tensor g_rows = (relu ? relu_grad_from_output(y_saved, g) : g.contiguous()).view({-1, out_features});  // (M, out)
    std::vector<Tensor> grads(bias.defined() ? 3 : 2);
    if (need_x) {  // dX (M, in) = g W: g per row to int8, W's codes and scale from forward
      Tensor g_q = Tensor::empty({M, out_features}, DType::i8);
      Tensor g_scales = Tensor::empty({M}, DType::f32);
      quantize_rows(g_rows.data<float>(), M, out_features, g_q.data<int8_t>(), g_scales.data<float>());
      Tensor gx = Tensor::empty({M, in}, DType::f32);
      MatmulDims d;
      d.m = M, d.n = in, d.k = out_features, d.lda = out_features, d.ldb = in, d.ldc = in;
      Int8Epilogue e;
      e.row_scale = g_scales.data<float>();
      e.col_scale = w_scale.data<float>();
      product_s8(g_q.data<int8_t>(), w_q.data<int8_t>(), gx.data<float>(), d, e);
      grads[0] = gx.view(x_shape);
    }
    if (need_w)  // dW (out, in) = g^T x in bf16, summed over all rows
      grads[1] = reference ? matmul(g_rows.transpose_view(0, 1), x_kept)
                           : bf16_product(round_to_bf16(g_rows.data<float>(), M * out_features), true, out_features,
                                          x_kept, false, in, out_features, in, M);
    if (need_b) grads[2] = sum(g_rows, {0});
    return grads;
  });
}

}  // namespace dense_internal
}  // namespace frugal
