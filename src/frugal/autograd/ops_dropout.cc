// dropout: a counter-based mask, drawn again in backward instead of stored, so the op keeps no
// mask and reruns and resumes repeat it. Limits: f32/f64 only.
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

}  // namespace frugal
