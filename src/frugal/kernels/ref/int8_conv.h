// Scalar oracle of the int8 convolution (cpu/int8_conv.h, same signatures): exact int32 sums over
// u8/s8 inputs and s8 weights, then the f32 epilogue, and the f32 -> int8 activation quantizer.
// Limits: one group, channels-last activations, as the fast kernel.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "frugal/kernels/ref/dense.h"

namespace frugal {
namespace kernels {

// What an int8 convolution does after the int32 sum: y = fma(float(acc), scale[o], bias[o]) (one
// rounding; bias 0 when null), then max(., 0) when relu, in f32. scale holds one value per output channel (the input's scale
// times the channel's weight scale); bias may be null.
struct Int8ConvEpilogue {
  const float* scale = nullptr;
  const float* bias = nullptr;
  bool relu = false;
};

namespace ref {

// q = saturate(round_half_even(x / scale)) to [-127, 127] (s8) or [0, 255] (u8, x_unsigned).
inline void quantize_activation(const float* x, int64_t n, float scale, bool to_unsigned, void* q) {
  const float inverse = 1.0f / scale;
  for (int64_t i = 0; i < n; ++i) {
    const float r = std::nearbyint(x[i] * inverse);  // default rounding mode: half to even
    if (to_unsigned) static_cast<uint8_t*>(q)[i] = uint8_t(std::clamp(r, 0.0f, 255.0f));
    else static_cast<int8_t*>(q)[i] = int8_t(std::clamp(r, -127.0f, 127.0f));
  }
}

// x (n, h, w, c) u8 when x_unsigned else s8; weight (o, c, kh, kw) s8; y (n, out_h, out_w, o) f32.
inline void conv2d_s8(const void* x, bool x_unsigned, const int8_t* weight, float* y, const Conv2dDims& d,
                      const Int8ConvEpilogue& e) {
  auto input = [&](int64_t i) -> int32_t {
    return x_unsigned ? int32_t(static_cast<const uint8_t*>(x)[i]) : int32_t(static_cast<const int8_t*>(x)[i]);
  };
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t oh = 0; oh < d.out_h; ++oh)
      for (int64_t ow = 0; ow < d.out_w; ++ow)
        for (int64_t o = 0; o < d.o; ++o) {
          int32_t acc = 0;
          for (int64_t kh = 0; kh < d.kernel_h; ++kh) {
            const int64_t ih = oh * d.stride_h - d.padding_h + kh * d.dilation_h;
            if (ih < 0 || ih >= d.h) continue;
            for (int64_t kw = 0; kw < d.kernel_w; ++kw) {
              const int64_t iw = ow * d.stride_w - d.padding_w + kw * d.dilation_w;
              if (iw < 0 || iw >= d.w) continue;
              for (int64_t c = 0; c < d.c; ++c)
                acc += input(((n * d.h + ih) * d.w + iw) * d.c + c) *
                       int32_t(weight[((o * d.c + c) * d.kernel_h + kh) * d.kernel_w + kw]);
            }
          }
          float v = std::fma(float(acc), e.scale[o], e.bias ? e.bias[o] : 0.0f);
          if (e.relu) v = std::max(v, 0.0f);
          y[((n * d.out_h + oh) * d.out_w + ow) * d.o + o] = v;
        }
}

// conv2d_s8 with ReLU, then 2x2 max pooling (stride 2, floor): y (n, out_h / 2, out_w / 2, o) f32.
// Equal to max_pool2d(conv2d_s8(..., relu)) bit for bit (max and ReLU commute and round nothing).
inline void conv2d_s8_relu_pool2x2(const void* x, bool x_unsigned, const int8_t* weight, float* y, const Conv2dDims& d,
                                   const Int8ConvEpilogue& e) {
  std::vector<float> full(size_t(d.n * d.out_h * d.out_w * d.o));
  Int8ConvEpilogue relu = e;
  relu.relu = true;
  conv2d_s8(x, x_unsigned, weight, full.data(), d, relu);
  const int64_t ph = d.out_h / 2, pw = d.out_w / 2;
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t i = 0; i < ph; ++i)
      for (int64_t j = 0; j < pw; ++j)
        for (int64_t o = 0; o < d.o; ++o) {
          float m = full[size_t(((n * d.out_h + 2 * i) * d.out_w + 2 * j) * d.o + o)];
          for (int64_t a = 0; a < 2; ++a)
            for (int64_t b = 0; b < 2; ++b)
              m = std::max(m, full[size_t(((n * d.out_h + 2 * i + a) * d.out_w + 2 * j + b) * d.o + o)]);
          y[size_t(((n * ph + i) * pw + j) * d.o + o)] = m;
        }
}

}  // namespace ref
}  // namespace kernels
}  // namespace frugal
