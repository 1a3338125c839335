// Reference activation kernels (relu, gelu in erf and tanh forms, silu, sigmoid, tanh) and their
// derivatives, computed in double with the std:: functions: the oracle for cpu/activation.h.
// Limits: contiguous buffers of n elements; formulas follow PyTorch's definitions.
#pragma once

#include <cmath>
#include <cstdint>

namespace frugal {
namespace kernels {

enum class ActivationOp { relu, gelu_erf, gelu_tanh, silu, sigmoid, tanh };

// sigmoid and tanh differentiate most cheaply from their output; the others need their input.
inline bool activation_backward_uses_output(ActivationOp op) {
  return op == ActivationOp::sigmoid || op == ActivationOp::tanh;
}

namespace ref {

inline constexpr double kSqrt2OverPi = 0.7978845608028654;   // sqrt(2 / pi), gelu tanh form
inline constexpr double kGeluCubic = 0.044715;
inline constexpr double kInvSqrt2 = 0.7071067811865476;
inline constexpr double kInvSqrt2Pi = 0.3989422804014327;    // 1 / sqrt(2 pi), normal density

inline double sigmoid_double(double x) {
  // exp of a non-positive argument only, so neither tail overflows.
  double e = std::exp(-std::fabs(x));
  return x >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
}

inline double activation_value(ActivationOp op, double x) {
  switch (op) {
    case ActivationOp::relu: return x < 0 ? 0.0 : x;  // NaN stays NaN
    case ActivationOp::gelu_erf: return 0.5 * x * std::erfc(-x * kInvSqrt2);
    case ActivationOp::gelu_tanh:
      return 0.5 * x * (1.0 + std::tanh(kSqrt2OverPi * (x + kGeluCubic * x * x * x)));
    case ActivationOp::silu: return x * sigmoid_double(x);
    case ActivationOp::sigmoid: return sigmoid_double(x);
    case ActivationOp::tanh: return std::tanh(x);
  }
  return 0.0;
}

// d activation / dx at the saved value: the output y for sigmoid and tanh, the input x otherwise.
inline double activation_derivative(ActivationOp op, double saved) {
  const double x = saved, y = saved;
  switch (op) {
    case ActivationOp::relu: return x > 0 ? 1.0 : 0.0;
    case ActivationOp::gelu_erf:
      return 0.5 * std::erfc(-x * kInvSqrt2) + x * kInvSqrt2Pi * std::exp(-0.5 * x * x);
    case ActivationOp::gelu_tanh: {
      double t = std::tanh(kSqrt2OverPi * (x + kGeluCubic * x * x * x));
      double du = kSqrt2OverPi * (1.0 + 3.0 * kGeluCubic * x * x);
      return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du;
    }
    case ActivationOp::silu: {
      double s = sigmoid_double(x);
      return s * (1.0 + x * (1.0 - s));
    }
    case ActivationOp::sigmoid: return y * (1.0 - y);
    case ActivationOp::tanh: return 1.0 - y * y;
  }
  return 0.0;
}

// y[i] = f(x[i]).
template <class T>
void activation_forward(ActivationOp op, const T* x, T* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = T(activation_value(op, double(x[i])));
}

// grad_x[i] = grad_y[i] * f'(.) where `saved` is y for sigmoid/tanh and x otherwise.
template <class T>
void activation_backward(ActivationOp op, const T* saved, const T* grad_y, T* grad_x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) grad_x[i] = T(double(grad_y[i]) * activation_derivative(op, double(saved[i])));
}

}  // namespace ref
}  // namespace kernels
}  // namespace frugal
