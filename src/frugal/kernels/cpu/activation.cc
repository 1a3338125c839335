// Fast f32 activations: one vectorizable loop per op (the op is chosen outside the loop), split
// over threads in fixed chunks.
#include "frugal/kernels/cpu/activation.h"

#include "frugal/base/parallel.h"

namespace frugal {
namespace kernels {
namespace cpu {

namespace {
constexpr int64_t kGrain = 16384;
constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluCubic = 0.044715f;
constexpr float kInvSqrt2Pi = 0.3989422804014327f;

// Runs fn(x) -> y over n elements in parallel; fn is inlined into the vectorized loop.
template <class Fn>
void map(const float* x, float* y, int64_t n, Fn fn) {
  parallel_for(n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) y[i] = fn(x[i]);
  });
}

template <class Fn>
void map2(const float* a, const float* b, float* y, int64_t n, Fn fn) {
  parallel_for(n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) y[i] = fn(a[i], b[i]);
  });
}
}  // namespace

void activation_forward(ActivationOp op, const float* x, float* y, int64_t n) {
  switch (op) {
    case ActivationOp::relu: return map(x, y, n, [](float v) { return v < 0.0f ? 0.0f : v; });
    case ActivationOp::gelu_erf: return map(x, y, n, [](float v) { return v * fast::normal_cdf(v); });
    case ActivationOp::gelu_tanh:
      // 0.5 (1 + tanh(u)) = sigmoid(2u): keeps relative accuracy in the negative tail.
      return map(x, y, n, [](float v) {
        float u = kSqrt2OverPi * (v + kGeluCubic * v * v * v);
        return v * fast::sigmoid(2.0f * u);
      });
    case ActivationOp::silu: return map(x, y, n, [](float v) { return v * fast::sigmoid(v); });
    case ActivationOp::sigmoid: return map(x, y, n, [](float v) { return fast::sigmoid(v); });
    case ActivationOp::tanh: return map(x, y, n, [](float v) { return fast::tanh(v); });
  }
}

void activation_backward(ActivationOp op, const float* saved, const float* grad_y, float* grad_x, int64_t n) {
  switch (op) {
    case ActivationOp::relu:
      return map2(saved, grad_y, grad_x, n, [](float x, float g) { return x > 0.0f ? g : 0.0f; });
    case ActivationOp::gelu_erf:
      return map2(saved, grad_y, grad_x, n, [](float x, float g) {
        return g * (fast::normal_cdf(x) + x * kInvSqrt2Pi * fast::exp(-0.5f * x * x));
      });
    case ActivationOp::gelu_tanh:
      // d/dx [x s(2u)] = s + x * 2 s (1 - s) u'. Beyond |x| = 20 it is 0 or 1 to float precision;
      // clamping there keeps x^3 from overflowing into inf * 0.
      return map2(saved, grad_y, grad_x, n, [](float x_in, float g) {
        float x = fast::max_f(fast::min_f(x_in, 20.0f), -20.0f);
        float u = kSqrt2OverPi * (x + kGeluCubic * x * x * x);
        float du = kSqrt2OverPi * (1.0f + 3.0f * kGeluCubic * x * x);
        float s = fast::sigmoid(2.0f * u);
        return g * (s + 2.0f * x * s * (1.0f - s) * du);
      });
    case ActivationOp::silu:
      return map2(saved, grad_y, grad_x, n, [](float x, float g) {
        float s = fast::sigmoid(x);
        return g * (s * (1.0f + x * (1.0f - s)));
      });
    case ActivationOp::sigmoid:
      return map2(saved, grad_y, grad_x, n, [](float y, float g) { return g * (y * (1.0f - y)); });
    case ActivationOp::tanh:
      return map2(saved, grad_y, grad_x, n, [](float y, float g) { return g * (1.0f - y * y); });
  }
}

}  // namespace cpu
}  // namespace kernels
}  // namespace frugal
