// matmul, linear, conv2d and the 2-D pools: shape checks, forward through kernels::cpu (oneDNN)
// or kernels::ref, and their grad rules. Operands are passed to the kernels as strided views
// (transposes included) and copied only when their strides cannot be described to the kernel.
// In bf16-mixed precision (precision.h) f32 matmul/linear/conv2d round their operands to bf16 and
// accumulate in f32, forward and backward; the reference path runs the f32 reference kernels on
// the same rounded values. fp16-mixed rounds the operands to IEEE half values instead (nearest
// even, overflow to inf) but, as Debian's oneDNN 2.6 has no f16 matmul/convolution on CPUs, keeps
// them in f32 and runs the f32 kernels on them: the numerics of fp16-mixed without its speed. In
// both modes the bias is added in f32 and every output and gradient is f32. Every product computed
// counts its FLOPs (flops.h): matmul_forward and bf16_product for matmul and linear, each
// convolution pass in conv2d and conv2d_mixed.
#include <algorithm>
#include <string>

#include "frugal/autograd/flops.h"
#include "frugal/autograd/linear_int8.h"
#include "frugal/autograd/ops.h"
#include "frugal/autograd/precision.h"
#include "frugal/kernels/cpu/activation.h"
#include "frugal/kernels/cpu/convert.h"
#include "frugal/kernels/cpu/dense.h"
#include "frugal/kernels/cpu/pool.h"
#include "frugal/kernels/kernels.h"
#include "frugal/kernels/ref/convert.h"
#include "frugal/kernels/ref/dense.h"

namespace frugal {

namespace {
using kernels::Conv2dDims;
using kernels::MatmulDims;
using kernels::Pool2dDims;

void check_same_dtype(const char* op, const Tensor& a, const char* a_name, const Tensor& b, const char* b_name) {
  if (a.dtype() != b.dtype())
    throw InputError(std::string(op) + ": " + a_name + " is " + std::string(dtype_name(a.dtype())) + " but " + b_name +
                     " is " + std::string(dtype_name(b.dtype())) + " (expected the same dtype)");
}

// FLOPs of `batch` products (m, k) x (k, n): a multiply-add is 2.
double product_flops(int64_t batch, int64_t m, int64_t n, int64_t k) {
  return 2.0 * double(batch) * double(m) * double(n) * double(k);
}

void check_rank(const char* op, const Tensor& t, const char* name, int64_t rank, bool at_least = false) {
  if (at_least ? t.rank() < rank : t.rank() != rank)
    throw InputError(std::string(op) + ": " + name + " has shape " + shape_str(t.shape()) + ", expected " +
                     (at_least ? "at least " : "") + std::to_string(rank) + " dimensions");
}

// ---- bf16-mixed helpers ----

bool use_bf16(DType dtype) { return dtype == DType::f32 && bf16_operands(compute_precision()); }

// Elements from a view's first element to its last (its strides are non-negative), so a strided
// operand converts in one pass and keeps its strides; 0 for an empty view.
int64_t view_span(const Tensor& t) {
  int64_t span = 1;
  for (size_t i = 0; i < t.shape().size(); ++i) {
    if (t.shape()[i] == 0) return 0;
    FRUGAL_CHECK(t.strides()[i] >= 0, "dense operand with a negative stride");
    span += (t.shape()[i] - 1) * t.strides()[i];
  }
  return span;
}

// The bf16 rounding of the `count` f32 values at `src`, as a flat (count) bf16 tensor.
Tensor round_to_bf16(const float* src, int64_t count) {
  Tensor out = Tensor::empty({count}, DType::bf16);
  if (kernels::reference_mode()) kernels::ref::f32_to_bf16(src, out.data<bf16_t>(), count);
  else kernels::cpu::f32_to_bf16(src, out.data<bf16_t>(), count);
  return out;
}

// A strided f32 view rounded to bf16, laid out like the view's span (same strides from element 0).
Tensor round_view_to_bf16(const Tensor& t) { return round_to_bf16(t.data<float>(), view_span(t)); }

// ---- fp16-mixed helpers ----

bool use_f16(DType dtype) { return dtype == DType::f32 && compute_precision() == Precision::fp16_mixed; }

// The f16 rounding of the `count` f32 values at `src`, kept as f32 values: a flat (count) f32 tensor.
Tensor round_to_f16(const float* src, int64_t count) {
  Tensor out = Tensor::empty({count}, DType::f32);
  float* dst = out.data<float>();
  if (kernels::reference_mode()) {
    for (int64_t i = 0; i < count; ++i) dst[i] = f16_to_float(float_to_f16(src[i]));
  } else {
    kernels::cpu::round_to_f16(src, dst, count);
  }
  return out;
}

// A strided f32 view rounded to f16 values, laid out like the view's span (same strides from element 0).
Tensor round_view_to_f16(const Tensor& t) { return round_to_f16(t.data<float>(), view_span(t)); }

// ---- matmul ----

// One matmul operand as MatmulDims reads it: the tensor holding the values (a packed copy only
// when the strides do not fit), whether it is stored transposed, its leading dimension and its
// batch stride (0 = one matrix for every batch entry).
struct MatrixOperand {
  Tensor values;
  bool transposed = false;
  int64_t ld = 0, batch_stride = 0;
};

// Batch axes of `t` (all but the last two) collapse into one stride when every non-1 axis steps
// over the next one exactly; returns false otherwise.
bool collapse_batch(const Tensor& t, int64_t* stride) {
  int64_t previous = -1;
  *stride = 0;
  for (int64_t i = t.rank() - 3; i >= 0; --i) {
    if (t.shape()[i] == 1) continue;
    if (previous >= 0 && t.strides()[i] != t.strides()[previous] * t.shape()[previous]) return false;
    if (previous < 0) *stride = t.strides()[i];
    previous = i;
  }
  return true;
}

bool describe_matrix(const Tensor& t, MatrixOperand* op) {
  const int64_t rows = t.size(-2), cols = t.size(-1);
  const int64_t rs = t.strides()[size_t(t.rank() - 2)], cs = t.strides()[size_t(t.rank() - 1)];
  if ((cols == 1 || cs == 1) && (rows == 1 || rs >= cols)) {
    op->transposed = false;
    op->ld = rows == 1 ? cols : rs;
    return true;
  }
  if ((rows == 1 || rs == 1) && (cols == 1 || cs >= rows)) {
    op->transposed = true;
    op->ld = cols == 1 ? rows : cs;
    return true;
  }
  return false;
}

// `t` (t_batch..., rows, cols) read as shape_numel(batch) matrices of the broadcast batch shape.
MatrixOperand matrix_operand(const Tensor& t, const Shape& batch) {
  const int64_t batch_count = shape_numel(batch);
  const int64_t t_count = shape_numel(Shape(t.shape().begin(), t.shape().end() - 2));
  MatrixOperand op;
  op.values = t;
  // Equal counts mean t's batch shape equals `batch` up to size-1 axes (it broadcasts to it).
  bool fits = t_count == 1 || t_count == batch_count;
  if (fits && t_count > 1) fits = collapse_batch(t, &op.batch_stride);
  if (fits) fits = describe_matrix(t, &op);
  if (!fits) {  // partly broadcast batch axes or scattered strides: pack a copy
    Shape full = batch;
    full.push_back(t.size(-2));
    full.push_back(t.size(-1));
    op.values = t.expand_view(full).contiguous();
    op.transposed = false;
    op.ld = t.size(-1);
    op.batch_stride = t.size(-2) * t.size(-1);
  }
  if (t_count == 1) op.batch_stride = 0;
  return op;
}

// out (batch..., m, n) = a (..., m, k) x b (..., k, n) [+ bias (n)], no autograd.
// relu's forward rule on a packed tensor, in place (the reference paths of the fused epilogue).
void relu_in_place(Tensor& t) {
  if (t.dtype() == DType::f64)
    kernels::ref::activation_forward<double>(kernels::ActivationOp::relu, t.data<double>(), t.data<double>(), t.numel());
  else
    kernels::ref::activation_forward<float>(kernels::ActivationOp::relu, t.data<float>(), t.data<float>(), t.numel());
}

// The gradient through a relu from its output y: g where y > 0, else 0 (relu's own rule).
Tensor relu_grad_from_output(const Tensor& y, const Tensor& g_in) {
  Tensor g = g_in.contiguous(), out = Tensor::empty(g.shape(), g.dtype());
  kernels::dispatch_float(
      g.dtype(), "relu backward",
      [&](auto tag) {
        using T = decltype(tag);
        kernels::ref::activation_backward<T>(kernels::ActivationOp::relu, y.data<T>(), g.data<T>(), out.data<T>(),
                                             g.numel());
      },
      [&] {
        kernels::cpu::activation_backward(kernels::ActivationOp::relu, y.data<float>(), g.data<float>(),
                                          out.data<float>(), g.numel());
      });
  return out;
}

// relu: out = max(a b + bias, 0) in one pass on the fast kernels (a oneDNN post-op).
Tensor matmul_forward(const char* name, const Tensor& a, const Tensor& b, const Tensor& bias, bool relu = false) {
  check_rank(name, a, "first operand", 2, true);
  check_rank(name, b, "second operand", 2, true);
  check_same_dtype(name, a, "first operand", b, "second operand");
  const int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  if (b.size(-2) != k)
    throw InputError(std::string(name) + ": shapes " + shape_str(a.shape()) + " and " + shape_str(b.shape()) +
                     " do not multiply (inner sizes " + std::to_string(k) + " and " + std::to_string(b.size(-2)) + ")");
  Shape batch = broadcast_shapes(Shape(a.shape().begin(), a.shape().end() - 2), Shape(b.shape().begin(), b.shape().end() - 2));
  Shape out_shape = batch;
  out_shape.push_back(m);
  out_shape.push_back(n);
  Tensor out = Tensor::empty(out_shape, a.dtype());
  if (out.numel() == 0) return out;

  MatrixOperand ao = matrix_operand(a, batch), bo = matrix_operand(b, batch);
  MatmulDims d;
  d.batch = shape_numel(batch);
  d.m = m, d.n = n, d.k = k;
  d.transpose_a = ao.transposed, d.transpose_b = bo.transposed;
  d.lda = ao.ld, d.ldb = bo.ld, d.ldc = n;
  d.batch_stride_a = ao.batch_stride, d.batch_stride_b = bo.batch_stride, d.batch_stride_c = m * n;
  autograd::count_flops(product_flops(d.batch, m, n, k));
  Tensor bias_c = bias.defined() ? bias.contiguous() : Tensor();
  if (use_bf16(a.dtype())) {
    Tensor a16 = round_view_to_bf16(ao.values), b16 = round_view_to_bf16(bo.values);
    const float* bias_p = bias_c.defined() ? bias_c.data<float>() : nullptr;
    if (kernels::reference_mode()) {  // the f32 oracle on the rounded operands
      Tensor a32 = a16.to(DType::f32), b32 = b16.to(DType::f32);
      kernels::ref::matmul<float>(a32.data<float>(), b32.data<float>(), bias_p, out.data<float>(), d);
      if (relu) relu_in_place(out);
    } else {
      kernels::cpu::matmul_bf16(a16.data<bf16_t>(), b16.data<bf16_t>(), bias_p, out.data<float>(), d, relu);
    }
    return out;
  }
  if (use_f16(a.dtype())) {  // the f32 kernels on f16-valued operands
    Tensor a16 = round_view_to_f16(ao.values), b16 = round_view_to_f16(bo.values);
    const float* bias_p = bias_c.defined() ? bias_c.data<float>() : nullptr;
    if (kernels::reference_mode()) {
      kernels::ref::matmul<float>(a16.data<float>(), b16.data<float>(), bias_p, out.data<float>(), d);
      if (relu) relu_in_place(out);
    } else {
      kernels::cpu::matmul(a16.data<float>(), b16.data<float>(), bias_p, out.data<float>(), d, relu);
    }
    return out;
  }
  kernels::dispatch_float(
      a.dtype(), name,
      [&](auto tag) {
        using T = decltype(tag);
        kernels::ref::matmul<T>(ao.values.data<T>(), bo.values.data<T>(), bias_c.defined() ? bias_c.data<T>() : nullptr,
                                out.data<T>(), d);
        if (relu) relu_in_place(out);
      },
      [&] {
        kernels::cpu::matmul(ao.values.data<float>(), bo.values.data<float>(),
                             bias_c.defined() ? bias_c.data<float>() : nullptr, out.data<float>(), d, relu);
      });
  return out;
}

Shape with_last(Shape lead, int64_t last) {
  lead.push_back(last);
  return lead;
}

// ---- conv2d and pools ----

int64_t conv_out_size(const char* op, const char* axis, int64_t in, int64_t kernel, int64_t stride, int64_t padding,
                      int64_t dilation) {
  const int64_t span = in + 2 * padding - dilation * (kernel - 1) - 1;
  if (span < 0)
    throw InputError(std::string(op) + ": input " + axis + " " + std::to_string(in) + " with padding " +
                     std::to_string(padding) + " is smaller than the kernel extent " +
                     std::to_string(dilation * (kernel - 1) + 1));
  return span / stride + 1;
}

void check_positive(const char* op, const char* field, int64_t value, int64_t minimum) {
  if (value < minimum)
    throw InputError(std::string(op) + ": " + field + " is " + std::to_string(value) + ", expected at least " +
                     std::to_string(minimum));
}

Conv2dDims conv_dims(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& o) {
  const char* op = "conv2d";
  check_rank(op, x, "input", 4);
  check_rank(op, weight, "weight", 4);
  check_same_dtype(op, x, "input", weight, "weight");
  check_positive(op, "groups", o.groups, 1);
  check_positive(op, "stride_h", o.stride_h, 1);
  check_positive(op, "stride_w", o.stride_w, 1);
  check_positive(op, "dilation_h", o.dilation_h, 1);
  check_positive(op, "dilation_w", o.dilation_w, 1);
  check_positive(op, "padding_h", o.padding_h, 0);
  check_positive(op, "padding_w", o.padding_w, 0);
  Conv2dDims d;
  d.n = x.size(0), d.c = x.size(1), d.h = x.size(2), d.w = x.size(3);
  d.o = weight.size(0), d.kernel_h = weight.size(2), d.kernel_w = weight.size(3);
  d.groups = o.groups;
  if (d.c % d.groups != 0 || d.o % d.groups != 0 || weight.size(1) * d.groups != d.c)
    throw InputError("conv2d: input " + shape_str(x.shape()) + " and weight " + shape_str(weight.shape()) +
                     " do not fit groups=" + std::to_string(d.groups) +
                     " (expected weight (O, C/groups, KH, KW) with C and O divisible by groups)");
  if (bias.defined()) {
    check_same_dtype(op, x, "input", bias, "bias");
    if (bias.shape() != Shape{d.o})
      throw InputError("conv2d: bias has shape " + shape_str(bias.shape()) + ", expected (" + std::to_string(d.o) + ")");
  }
  d.stride_h = o.stride_h, d.stride_w = o.stride_w;
  d.padding_h = o.padding_h, d.padding_w = o.padding_w;
  d.dilation_h = o.dilation_h, d.dilation_w = o.dilation_w;
  d.out_h = conv_out_size(op, "height", d.h, d.kernel_h, d.stride_h, d.padding_h, d.dilation_h);
  d.out_w = conv_out_size(op, "width", d.w, d.kernel_w, d.stride_w, d.padding_w, d.dilation_w);
  return d;
}

// FLOPs of one direct-convolution pass (forward, input gradient or weight gradient): each of the
// N O OH OW outputs sums C / groups x KH x KW products. Winograd does fewer multiplications; this
// is the count of the convolution, as nn::count_flops_per_sample counts it.
double conv_flops(const Conv2dDims& d) {
  return 2.0 * double(d.n) * double(d.o) * double(d.out_h) * double(d.out_w) * double(d.c / d.groups) *
         double(d.kernel_h) * double(d.kernel_w);
}

Pool2dDims pool_dims(const char* op, const Tensor& x, const Pool2dOptions& o) {
  check_rank(op, x, "input", 4);
  check_positive(op, "kernel_h", o.kernel_h, 1);
  check_positive(op, "kernel_w", o.kernel_w, 1);
  check_positive(op, "stride_h", o.stride_h, 1);
  check_positive(op, "stride_w", o.stride_w, 1);
  check_positive(op, "padding_h", o.padding_h, 0);
  check_positive(op, "padding_w", o.padding_w, 0);
  if (2 * o.padding_h > o.kernel_h || 2 * o.padding_w > o.kernel_w)
    throw InputError(std::string(op) + ": padding (" + std::to_string(o.padding_h) + ", " + std::to_string(o.padding_w) +
                     ") is more than half the kernel (" + std::to_string(o.kernel_h) + ", " +
                     std::to_string(o.kernel_w) + ")");
  Pool2dDims d;
  d.n = x.size(0), d.c = x.size(1), d.h = x.size(2), d.w = x.size(3);
  d.kernel_h = o.kernel_h, d.kernel_w = o.kernel_w;
  d.stride_h = o.stride_h, d.stride_w = o.stride_w;
  d.padding_h = o.padding_h, d.padding_w = o.padding_w;
  d.count_include_pad = o.count_include_pad;
  d.out_h = conv_out_size(op, "height", d.h, d.kernel_h, d.stride_h, d.padding_h, 1);
  d.out_w = conv_out_size(op, "width", d.w, d.kernel_w, d.stride_w, d.padding_w, 1);
  return d;
}

// Calls fn(tag) with float{} or double{} for the reference kernels of a dtype.
template <class Fn>
void with_ref_type(DType dtype, Fn&& fn) {
  if (dtype == DType::f64) fn(double{});
  else fn(float{});
}
}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  Tensor out = matmul_forward("matmul", a, b, Tensor());
  if (!autograd::needs_grad({&a, &b})) return out;
  Tensor a_saved = a.detach(), b_saved = b.detach();
  bool need_a = a.requires_grad(), need_b = b.requires_grad();
  const Precision precision = compute_precision();
  return autograd::record(out, "matmul", {a, b}, [=](const Tensor& g) -> std::vector<Tensor> {
    PrecisionGuard same_precision(precision);  // grads multiply in the forward's precision
    Tensor ga, gb;
    // g (batch..., m, n); dA = g B^T and dB = A^T g, summed over the axes each operand was broadcast along.
    if (need_a) ga = autograd::reduce_to_shape(matmul(g, b_saved.transpose_view(-2, -1)), a_saved.shape());
    if (need_b) {
      if (b_saved.rank() == 2) {  // b shared by every batch entry: one (k, rows) x (rows, n) product
        const int64_t k = a_saved.size(-1), n = g.size(-1);
        Tensor a_rows = a_saved.expand_view(with_last(Shape(g.shape().begin(), g.shape().end() - 1), k)).contiguous().view({-1, k});
        gb = matmul(a_rows.transpose_view(0, 1), g.contiguous().view({-1, n}));
      } else {
        gb = autograd::reduce_to_shape(matmul(a_saved.transpose_view(-2, -1), g), b_saved.shape());
      }
    }
    return {ga, gb};
  });
}

namespace {
// c (m, n) = op(a) op(b) (+ bias, then relu) on bf16 operands whose layouts the caller states, op
// a transpose where asked; c f32. linear's products on the operands it rounded once.
Tensor bf16_product(const Tensor& a, bool transpose_a, int64_t lda, const Tensor& b, bool transpose_b, int64_t ldb,
                    int64_t m, int64_t n, int64_t k, const float* bias = nullptr, bool relu = false) {
  Tensor c = Tensor::empty({m, n}, DType::f32);  // (m, n)
  MatmulDims d;
  d.m = m, d.n = n, d.k = k, d.lda = lda, d.ldb = ldb, d.ldc = n;
  d.transpose_a = transpose_a, d.transpose_b = transpose_b;
  if (m > 0 && n > 0) kernels::cpu::matmul_bf16(a.data<bf16_t>(), b.data<bf16_t>(), bias, c.data<float>(), d, relu);
  autograd::count_flops(product_flops(1, m, n, k));
  return c;
}

}  // namespace

// What linear_int8.cc shares with this file (linear_int8.h).
namespace dense_internal {
Tensor round_to_bf16(const float* src, int64_t count) { return frugal::round_to_bf16(src, count); }
Tensor bf16_product(const Tensor& a, bool transpose_a, int64_t lda, const Tensor& b, bool transpose_b, int64_t ldb,
                    int64_t m, int64_t n, int64_t k, const float* bias, bool relu) {
  return frugal::bf16_product(a, transpose_a, lda, b, transpose_b, ldb, m, n, k, bias, relu);
}
Tensor relu_grad_from_output(const Tensor& y, const Tensor& g) { return frugal::relu_grad_from_output(y, g); }
Shape with_last(Shape lead, int64_t last) { return frugal::with_last(std::move(lead), last); }
}  // namespace dense_internal

namespace {
Tensor linear_impl(const Tensor& x, const Tensor& weight, const Tensor& bias, bool relu) {
  check_rank("linear", x, "input", 1, true);
  check_rank("linear", weight, "weight", 2);
  check_same_dtype("linear", x, "input", weight, "weight");
  const int64_t in = weight.size(1), out_features = weight.size(0);
  if (x.size(-1) != in)
    throw InputError("linear: input " + shape_str(x.shape()) + " has " + std::to_string(x.size(-1)) +
                     " features, weight " + shape_str(weight.shape()) + " expects " + std::to_string(in));
  if (bias.defined()) {
    check_same_dtype("linear", x, "input", bias, "bias");
    if (bias.shape() != Shape{out_features})
      throw InputError("linear: bias has shape " + shape_str(bias.shape()) + ", expected (" +
                       std::to_string(out_features) + ")");
  }
  const Shape lead(x.shape().begin(), x.shape().end() - 1);
  const int64_t M = shape_numel(lead);
  Tensor x_rows = x.contiguous().view({M, in});  // (M, in)
  // int8-mixed: SwitchBack's int8 products, unless [precision] int8_exclude keeps this weight bf16.
  if (x.dtype() == DType::f32 && compute_precision() == Precision::int8_mixed &&
      !int8_excluded_weight(weight.data<float>()))
    return dense_internal::linear_int8(x, x_rows, weight, bias, relu);
  // In bf16-mixed precision on the fast kernels x and W are rounded to bf16 once and kept rounded
  // (half the bytes of f32 copies) for backward, which rounds only g: three conversions per layer
  // and step instead of the six that matmul would make, the same products operand for operand.
  // Otherwise matmul multiplies x and W as they are (rounding them as the precision asks).
  const bool bf16 = use_bf16(x.dtype()) && !kernels::reference_mode();
  const Tensor x_kept = bf16 ? round_to_bf16(x_rows.data<float>(), M * in) : x_rows.detach();  // (M, in)
  const Tensor w_kept =
      bf16 ? round_to_bf16(weight.contiguous().data<float>(), out_features * in) : weight.detach();  // (out, in)
  // y (M, out) = x W^T + b: W read transposed (a strided view, not a copy). Backward reads x and
  // W, not y (except for the ReLU's sign), so an UnreadOutputs scope can do without the product.
  Tensor y;
  if (!relu && autograd::skip_output({&x, &weight, &bias}, {&x, &weight}))
    y = Tensor::empty({M, out_features}, x.dtype());
  else if (bf16)
    y = bf16_product(x_kept, false, in, w_kept, true, in, M, out_features, in,
                     bias.defined() ? bias.contiguous().data<float>() : nullptr, relu);
  else
    y = matmul_forward("linear", x_rows, weight.transpose_view(0, 1), bias, relu);
  y = y.view(with_last(lead, out_features));
  std::vector<Tensor> inputs{x, weight};
  if (bias.defined()) inputs.push_back(bias);
  if (!autograd::needs_grad(inputs)) return y;
  bool need_x = x.requires_grad(), need_w = weight.requires_grad(), need_b = bias.defined() && bias.requires_grad();
  Shape x_shape = x.shape();
  const Precision precision = compute_precision();
  const Tensor y_saved = relu ? y.detach() : Tensor();
  return autograd::record(y, relu ? "linear_relu" : "linear", inputs, [=](const Tensor& g) -> std::vector<Tensor> {
    PrecisionGuard same_precision(precision);  // dX, dW in the forward's precision; the bias sum stays f32
    Tensor g_rows = (relu ? relu_grad_from_output(y_saved, g) : g.contiguous()).view({-1, out_features});  // (M, out)
    const Tensor g16 = bf16 ? round_to_bf16(g_rows.data<float>(), M * out_features) : Tensor();            // (M, out)
    std::vector<Tensor> grads(bias.defined() ? 3 : 2);
    if (need_x)  // dX (M, in) = g W
      grads[0] = (bf16 ? bf16_product(g16, false, out_features, w_kept, false, in, M, in, out_features)
                       : matmul(g_rows, w_kept))
                     .view(x_shape);
    if (need_w)  // dW (out, in) = g^T x, summed over all rows
      grads[1] = bf16 ? bf16_product(g16, true, out_features, x_kept, false, in, out_features, in, M)
                      : matmul(g_rows.transpose_view(0, 1), x_kept);
    if (need_b) grads[2] = sum(g_rows, {0});
    return grads;
  });
}
}  // namespace

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) { return linear_impl(x, weight, bias, false); }
Tensor linear_relu(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  return linear_impl(x, weight, bias, true);
}

namespace {
// A convolution operand (x, or the gradient of y) as the kernels read it: packed NCHW, or
// channels-last when d.channels_last.
Tensor conv_input(const Tensor& t, const Conv2dDims& d) {
  return d.channels_last ? to_channels_last(t) : t.contiguous();
}
Tensor conv_like_input(const Shape& shape, const Conv2dDims& d, DType dtype) {
  return d.channels_last ? empty_channels_last(shape, dtype) : Tensor::empty(shape, dtype);
}
Tensor conv_output(const Conv2dDims& d, DType dtype) { return conv_like_input({d.n, d.o, d.out_h, d.out_w}, d, dtype); }

// conv2d in bf16- or fp16-mixed precision: x and weight rounded once (and kept for backward),
// grad_y rounded in backward; every product accumulates in f32 and every result (y, dX, dW, db)
// is f32, except y with bf16_output (rounded as written; its gradient then comes in bf16 and is
// read as it is). bf16 operands are bf16 tensors for the bf16 kernels (half the bytes kept);
// f16 values stay in f32 tensors for the f32 kernels (Debian's oneDNN has no f16 convolution).
// The reference kernels read either widened to f32. The bias is added in f32; db is summed from
// the rounded grad_y, as the oneDNN kernel reads only that.
Tensor conv2d_mixed(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dDims& d, Precision precision,
                    bool bf16_output) {
  const bool bf16 = bf16_operands(precision);
  auto rounded = [bf16](const Tensor& t) {
    return bf16 ? round_to_bf16(t.data<float>(), t.numel()) : round_to_f16(t.data<float>(), t.numel());
  };
  auto widened = [](const Tensor& t) { return t.dtype() == DType::f32 ? t : t.to(DType::f32); };
  Tensor xc = conv_input(x, d), wc = weight.contiguous(), bc = bias.defined() ? bias.contiguous() : Tensor();
  Tensor x16 = rounded(xc), w16 = rounded(wc);
  const DType out_dtype = bf16_output ? DType::bf16 : DType::f32;
  Tensor out = conv_output(d, out_dtype);  // (N, O, OH, OW)
  const float* bias_p = bc.defined() ? bc.data<float>() : nullptr;
  if (kernels::reference_mode())
    kernels::ref::conv2d_forward<float>(widened(x16).data<float>(), widened(w16).data<float>(), bias_p,
                                        out.data<float>(), d);
  else if (!bf16)
    kernels::cpu::conv2d_forward(x16.data<float>(), w16.data<float>(), bias_p, out.data<float>(), d);
  else if (bf16_output)
    kernels::cpu::conv2d_forward_bf16(x16.data<bf16_t>(), w16.data<bf16_t>(), bias_p, out.data<bf16_t>(), d);
  else
    kernels::cpu::conv2d_forward_bf16(x16.data<bf16_t>(), w16.data<bf16_t>(), bias_p, out.data<float>(), d);
  autograd::count_flops(conv_flops(d));
  std::vector<Tensor> inputs{x, weight};
  if (bias.defined()) inputs.push_back(bias);
  if (!autograd::needs_grad(inputs)) return out;
  bool need_x = x.requires_grad(), need_w = weight.requires_grad(), need_b = bias.defined() && bias.requires_grad();
  bool has_bias = bias.defined();
  Shape x_shape = x.shape(), w_shape = weight.shape();
  return autograd::record(out, "conv2d", inputs, [=](const Tensor& g_in) -> std::vector<Tensor> {
    Tensor g = conv_input(g_in, d);  // (N, O, OH, OW)
    FRUGAL_CHECK(g.dtype() == out_dtype, "conv2d mixed-precision backward: the gradient's dtype is not y's");
    const bool reference = kernels::reference_mode();
    Tensor g16 = bf16_output ? g : rounded(g);  // a bf16 gradient is read as it is
    Tensor g32 = reference ? widened(g16) : Tensor();
    std::vector<Tensor> grads(has_bias ? 3 : 2);
    if (need_x) {
      Tensor gx = conv_like_input(x_shape, d, DType::f32);
      if (reference)
        kernels::ref::conv2d_backward_data<float>(g32.data<float>(), widened(w16).data<float>(), gx.data<float>(), d);
      else if (bf16)
        kernels::cpu::conv2d_backward_data_bf16(g16.data<bf16_t>(), w16.data<bf16_t>(), gx.data<float>(), d);
      else
        kernels::cpu::conv2d_backward_data(g16.data<float>(), w16.data<float>(), gx.data<float>(), d);
      autograd::count_flops(conv_flops(d));
      grads[0] = gx;
    }
    if (need_w || need_b) {
      Tensor gw = Tensor::empty(w_shape, DType::f32);
      Tensor gb = has_bias ? Tensor::empty({d.o}, DType::f32) : Tensor();
      float* gb_p = has_bias ? gb.data<float>() : nullptr;
      if (reference)
        kernels::ref::conv2d_backward_weights<float>(widened(x16).data<float>(), g32.data<float>(), gw.data<float>(),
                                                     gb_p, d);
      else if (bf16)
        kernels::cpu::conv2d_backward_weights_bf16(x16.data<bf16_t>(), g16.data<bf16_t>(), gw.data<float>(), gb_p, d);
      else
        kernels::cpu::conv2d_backward_weights(x16.data<float>(), g16.data<float>(), gw.data<float>(), gb_p, d);
      autograd::count_flops(conv_flops(d));
      if (need_w) grads[1] = gw;
      if (need_b) grads[2] = gb;
    }
    return grads;
  });
}
}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& options) {
  Conv2dDims d = conv_dims(x, weight, bias, options);
  // Channels-last input runs channels-last (oneDNN's NHWC kernels, no reorders) and gives
  // channels-last output and input gradient; the reference kernels read NCHW.
  d.channels_last = x.dtype() == DType::f32 && is_channels_last(x) && !kernels::reference_mode();
  if (use_bf16(x.dtype()) || use_f16(x.dtype())) {
    const bool bf16_output = use_bf16(x.dtype()) && options.bf16_output && d.channels_last;
    return conv2d_mixed(x, weight, bias, d, compute_precision(), bf16_output);
  }
  Tensor xc = conv_input(x, d), wc = weight.contiguous(), bc = bias.defined() ? bias.contiguous() : Tensor();
  Tensor out = conv_output(d, x.dtype());  // (N, O, OH, OW)
  kernels::dispatch_float(
      x.dtype(), "conv2d",
      [&](auto tag) {
        using T = decltype(tag);
        kernels::ref::conv2d_forward<T>(xc.data<T>(), wc.data<T>(), bc.defined() ? bc.data<T>() : nullptr, out.data<T>(), d);
      },
      [&] {
        kernels::cpu::conv2d_forward(xc.data<float>(), wc.data<float>(), bc.defined() ? bc.data<float>() : nullptr,
                                     out.data<float>(), d);
      });
  autograd::count_flops(conv_flops(d));
  std::vector<Tensor> inputs{x, weight};
  if (bias.defined()) inputs.push_back(bias);
  if (!autograd::needs_grad(inputs)) return out;
  Tensor x_saved = xc.detach(), w_saved = wc.detach();
  bool need_x = x.requires_grad(), need_w = weight.requires_grad(), need_b = bias.defined() && bias.requires_grad();
  bool has_bias = bias.defined();
  return autograd::record(out, "conv2d", inputs, [=](const Tensor& g_in) -> std::vector<Tensor> {
    Tensor g = conv_input(g_in, d);  // (N, O, OH, OW)
    std::vector<Tensor> grads(has_bias ? 3 : 2);
    const DType dtype = g.dtype();
    if (need_x) {
      Tensor gx = conv_like_input(x_saved.shape(), d, dtype);
      kernels::dispatch_float(
          dtype, "conv2d backward",
          [&](auto tag) {
            using T = decltype(tag);
            kernels::ref::conv2d_backward_data<T>(g.data<T>(), w_saved.data<T>(), gx.data<T>(), d);
          },
          [&] { kernels::cpu::conv2d_backward_data(g.data<float>(), w_saved.data<float>(), gx.data<float>(), d); });
      autograd::count_flops(conv_flops(d));
      grads[0] = gx;
    }
    if (need_w || need_b) {
      // One pass gives both; the bias gradient is cheap enough to compute when unused.
      Tensor gw = Tensor::empty(w_saved.shape(), dtype);
      Tensor gb = has_bias ? Tensor::empty({d.o}, dtype) : Tensor();
      kernels::dispatch_float(
          dtype, "conv2d backward",
          [&](auto tag) {
            using T = decltype(tag);
            kernels::ref::conv2d_backward_weights<T>(x_saved.data<T>(), g.data<T>(), gw.data<T>(),
                                                     has_bias ? gb.data<T>() : nullptr, d);
          },
          [&] {
            kernels::cpu::conv2d_backward_weights(x_saved.data<float>(), g.data<float>(), gw.data<float>(),
                                                  has_bias ? gb.data<float>() : nullptr, d);
          });
      autograd::count_flops(conv_flops(d));
      if (need_w) grads[1] = gw;
      if (need_b) grads[2] = gb;
    }
    return grads;
  });
}

namespace {
// 2x2 max pooling of a channels-last f32 tensor, channels-last out (kernels/cpu/pool.h).
Tensor max_pool2x2_channels_last(const Tensor& x, const Pool2dDims& d) {
  Tensor out = empty_channels_last({d.n, d.c, d.out_h, d.out_w}, DType::f32);  // (N, C, OH, OW)
  Tensor where = Tensor::empty({d.n, d.out_h, d.out_w, d.c}, DType::u8);        // the winner in each window
  kernels::cpu::max_pool2x2_forward_nhwc(x.data<float>(), out.data<float>(), where.data<uint8_t>(), d.n, d.h, d.w, d.c);
  if (!autograd::needs_grad({&x})) return out;
  Shape x_shape = x.shape();
  return autograd::record(out, "max_pool2d", {x}, [=](const Tensor& g) -> std::vector<Tensor> {
    FRUGAL_CHECK(g.dtype() == DType::f32, "max_pool2d backward expects an f32 gradient");
    Tensor gx = empty_channels_last(x_shape, DType::f32);
    const int64_t strides[4] = {g.strides()[0], g.strides()[1], g.strides()[2], g.strides()[3]};
    kernels::cpu::max_pool2x2_backward_nhwc(g.data<float>(), strides, where.data<uint8_t>(), gx.data<float>(), d.n, d.h,
                                            d.w, d.c);
    return {gx};
  });
}
}  // namespace

Tensor max_pool2d(const Tensor& x, const Pool2dOptions& options) {
  const Pool2dDims d = pool_dims("max_pool2d", x, options);
  if (x.dtype() == DType::f32 && is_channels_last(x) && !kernels::reference_mode() && kernels::cpu::is_pool2x2(d))
    return max_pool2x2_channels_last(x, d);
  Tensor xc = x.contiguous();
  Tensor out = Tensor::empty({d.n, d.c, d.out_h, d.out_w}, x.dtype());  // (N, C, OH, OW)
  // Where each maximum came from: i32 indices (reference path) or oneDNN's opaque workspace (u8).
  Tensor argmax;
  kernels::dispatch_float(
      x.dtype(), "max_pool2d",
      [&](auto tag) {
        using T = decltype(tag);
        argmax = Tensor::empty(out.shape(), DType::i32);
        kernels::ref::max_pool2d_forward<T>(xc.data<T>(), out.data<T>(), argmax.data<int32_t>(), d);
      },
      [&] {
        argmax = Tensor::empty({int64_t(std::max<size_t>(kernels::cpu::max_pool2d_workspace_bytes(d), 1))}, DType::u8);
        kernels::cpu::max_pool2d_forward(xc.data<float>(), out.data<float>(), argmax.data<uint8_t>(), d);
      });
  Shape x_shape = x.shape();
  return autograd::record(out, "max_pool2d", {x}, [=](const Tensor& g_in) -> std::vector<Tensor> {
    Tensor g = g_in.contiguous();
    Tensor gx = Tensor::empty(x_shape, g.dtype());
    if (argmax.dtype() == DType::u8) {
      kernels::cpu::max_pool2d_backward(g.data<float>(), argmax.data<uint8_t>(), gx.data<float>(), d);
    } else {
      with_ref_type(g.dtype(), [&](auto tag) {
        using T = decltype(tag);
        kernels::ref::max_pool2d_backward<T>(g.data<T>(), argmax.data<int32_t>(), gx.data<T>(), d);
      });
    }
    return {gx};
  });
}

Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& options) {
  const Pool2dDims d = pool_dims("avg_pool2d", x, options);
  Tensor xc = x.contiguous();
  Tensor out = Tensor::empty({d.n, d.c, d.out_h, d.out_w}, x.dtype());  // (N, C, OH, OW)
  kernels::dispatch_float(
      x.dtype(), "avg_pool2d",
      [&](auto tag) {
        using T = decltype(tag);
        kernels::ref::avg_pool2d_forward<T>(xc.data<T>(), out.data<T>(), d);
      },
      [&] { kernels::cpu::avg_pool2d_forward(xc.data<float>(), out.data<float>(), d); });
  Shape x_shape = x.shape();
  return autograd::record(out, "avg_pool2d", {x}, [=](const Tensor& g_in) -> std::vector<Tensor> {
    Tensor g = g_in.contiguous();
    Tensor gx = Tensor::empty(x_shape, g.dtype());
    kernels::dispatch_float(
        g.dtype(), "avg_pool2d backward",
        [&](auto tag) {
          using T = decltype(tag);
          kernels::ref::avg_pool2d_backward<T>(g.data<T>(), gx.data<T>(), d);
        },
        [&] { kernels::cpu::avg_pool2d_backward(g.data<float>(), gx.data<float>(), d); });
    return {gx};
  });
}

Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w) {
  check_rank("adaptive_avg_pool2d", x, "input", 4);
  check_positive("adaptive_avg_pool2d", "out_h", out_h, 1);
  check_positive("adaptive_avg_pool2d", "out_w", out_w, 1);
  const int64_t planes = x.size(0) * x.size(1), h = x.size(2), w = x.size(3);
  if (h == 0 || w == 0) throw InputError("adaptive_avg_pool2d: input " + shape_str(x.shape()) + " has an empty plane");
  Tensor xc = x.contiguous();
  Tensor out = Tensor::empty({x.size(0), x.size(1), out_h, out_w}, x.dtype());  // (N, C, OH, OW)
  kernels::dispatch_float(
      x.dtype(), "adaptive_avg_pool2d",
      [&](auto tag) {
        using T = decltype(tag);
        kernels::ref::adaptive_avg_pool2d_forward<T>(xc.data<T>(), out.data<T>(), planes, h, w, out_h, out_w);
      },
      [&] { kernels::cpu::adaptive_avg_pool2d_forward(xc.data<float>(), out.data<float>(), planes, h, w, out_h, out_w); });
  Shape x_shape = x.shape();
  return autograd::record(out, "adaptive_avg_pool2d", {x}, [=](const Tensor& g_in) -> std::vector<Tensor> {
    Tensor g = g_in.contiguous();
    Tensor gx = Tensor::empty(x_shape, g.dtype());
    kernels::dispatch_float(
        g.dtype(), "adaptive_avg_pool2d backward",
        [&](auto tag) {
          using T = decltype(tag);
          kernels::ref::adaptive_avg_pool2d_backward<T>(g.data<T>(), gx.data<T>(), planes, h, w, out_h, out_w);
        },
        [&] { kernels::cpu::adaptive_avg_pool2d_backward(g.data<float>(), gx.data<float>(), planes, h, w, out_h, out_w); });
    return {gx};
  });
}

}  // namespace frugal
