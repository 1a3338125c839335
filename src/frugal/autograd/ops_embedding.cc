// dropout (counter-based mask, recomputed in backward instead of stored) and embedding (row
// gather; backward a deterministic scatter-add). Limits: f32/f64 values; i32/i64 indices.
#include <cmath>
#include <string>

#include "frugal/autograd/ops.h"
#include "frugal/kernels/cpu/elementwise.h"
#include "frugal/kernels/kernels.h"

namespace frugal {

namespace {
// Applies the (seed, stream) mask and 1/(1-p) scale to x: the forward, and also the backward
// applied to the gradient, since the mask is a pure function of the element index.
Tensor apply_dropout_mask(const Tensor& x, double p, uint64_t seed, uint64_t stream) {
  Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  kernels::dispatch_float(
      x.dtype(), "dropout",
      [&](auto tag) {
        using T = decltype(tag);
        kernels::ref::dropout<T>(xc.data<T>(), out.data<T>(), out.numel(), p, seed, stream);
      },
      [&] { kernels::cpu::dropout(xc.data<float>(), out.data<float>(), out.numel(), p, seed, stream); });
  return out;
}
}  // namespace

Tensor dropout(const Tensor& x, double p, bool training, uint64_t seed, uint64_t stream) {
  if (!(p >= 0.0 && p <= 1.0))
    throw InputError("dropout: probability " + std::to_string(p) + " is not in [0, 1]");
  if (!dtype_is_float(x.dtype()) || x.dtype() == DType::bf16 || x.dtype() == DType::f16)
    kernels::fail_dtype("dropout", x.dtype());
  // Identity; a strided x still gets a packed output (reshape copies it and keeps the graph).
  if (!training || p == 0.0) return x.is_contiguous() ? x : reshape(x, x.shape());
  if (p == 1.0) {
    // Everything dropped: the output and the gradient are zero (no 1/(1-p) to apply).
    Tensor out = Tensor::zeros(x.shape(), x.dtype());
    return autograd::record(out, "dropout", {x}, [](const Tensor& g) -> std::vector<Tensor> {
      return {Tensor::zeros(g.shape(), g.dtype())};
    });
  }
  // The mask is a function of (seed, stream, position): backward draws it again, reading no value.
  Tensor out = autograd::skip_output({&x}, {}) ? Tensor::empty(x.shape(), x.dtype()) : apply_dropout_mask(x, p, seed, stream);
  return autograd::record(out, "dropout", {x}, [=](const Tensor& g) -> std::vector<Tensor> {
    return {apply_dropout_mask(g, p, seed, stream)};
  });
}

Tensor embedding(const Tensor& indices, const Tensor& weight) {
  if (indices.dtype() != DType::i32 && indices.dtype() != DType::i64)
    throw InputError("embedding: indices are " + std::string(dtype_name(indices.dtype())) +
                     ", expected i32 or i64");
  if (weight.rank() != 2)
    throw InputError("embedding: weight has shape " + shape_str(weight.shape()) + ", expected (V, C)");
  const int64_t rows = weight.shape()[0], channels = weight.shape()[1];  // V, C
  Tensor idx = indices.contiguous();
  const int64_t count = idx.numel();
  // Every index is checked before any row is read; the first bad one is reported.
  auto check = [&](auto tag) {
    using I = decltype(tag);
    const I* p = idx.data<I>();
    for (int64_t k = 0; k < count; ++k)
      if (p[k] < 0 || int64_t(p[k]) >= rows)
        throw InputError("embedding: index " + std::to_string(int64_t(p[k])) + " at position " + std::to_string(k) +
                         " is out of range for " + std::to_string(rows) + " rows (expected 0 <= index < " +
                         std::to_string(rows) + ")");
  };
  if (idx.dtype() == DType::i32) check(int32_t{});
  else check(int64_t{});

  Shape out_shape = indices.shape();
  out_shape.push_back(channels);
  Tensor w = weight.contiguous();
  Tensor out = Tensor::empty(out_shape, weight.dtype());  // (indices..., C)
  auto with_index_type = [&](auto&& fn) {
    if (idx.dtype() == DType::i32) fn(idx.data<int32_t>());
    else fn(idx.data<int64_t>());
  };
  kernels::dispatch_float(
      weight.dtype(), "embedding",
      [&](auto tag) {
        using T = decltype(tag);
        with_index_type([&](auto* p) { kernels::ref::embedding_forward(p, count, w.data<T>(), channels, out.data<T>()); });
      },
      [&] {
        with_index_type([&](auto* p) {
          kernels::cpu::embedding_forward(p, count, w.data<float>(), channels, out.data<float>());
        });
      });
  if (!autograd::needs_grad({&weight})) return out;
  // A private copy of the indices: a loader may refill its batch buffer before backward runs.
  if (idx.storage() == indices.storage()) idx = idx.clone();
  return autograd::record(out, "embedding", {indices, weight}, [=](const Tensor& g_in) -> std::vector<Tensor> {
    Tensor g = g_in.contiguous();  // (count, C)
    Tensor grad_weight = Tensor::empty({rows, channels}, g.dtype());
    auto with_index = [&](auto&& fn) {
      if (idx.dtype() == DType::i32) fn(idx.data<int32_t>());
      else fn(idx.data<int64_t>());
    };
    kernels::dispatch_float(
        g.dtype(), "embedding backward",
        [&](auto tag) {
          using T = decltype(tag);
          with_index([&](auto* p) {
            kernels::ref::embedding_backward(p, count, g.data<T>(), channels, grad_weight.data<T>(), rows);
          });
        },
        [&] {
          with_index([&](auto* p) {
            kernels::cpu::embedding_backward(p, count, g.data<float>(), channels, grad_weight.data<float>(), rows);
          });
        });
    return {Tensor(), grad_weight};
  });
}

}  // namespace frugal
