// embedding: a row gather forward, a deterministic scatter-add backward.
// Limits: f32/f64 weights; i32/i64 indices.
#include <string>

#include "frugal/autograd/ops.h"
#include "frugal/kernels/cpu/elementwise.h"
#include "frugal/kernels/kernels.h"

namespace frugal {

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
