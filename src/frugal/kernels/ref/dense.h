// Reference dense kernels: matmul, direct 2-D convolution (forward, backward data, backward
// weights) and 2-D pooling, as plain loops accumulating in double. The oracle for cpu/dense.h and
// what f64 runs; far too slow for training. Tensors are contiguous NCHW unless strides are given.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace frugal {
namespace kernels {

// c (batch, m, n) = a (batch, m, k) x b (batch, k, n) [+ bias (n) on every row].
// Stored operands: a(i, p) is a[i * lda + p], or a[p * lda + i] when transpose_a (the matrix is
// stored as (k, m)); likewise b. A batch stride of 0 reuses one matrix for every batch entry.
// c is written with row stride ldc (>= n) and batch stride batch_stride_c.
struct MatmulDims {
  int64_t batch = 1, m = 0, n = 0, k = 0;
  bool transpose_a = false, transpose_b = false;
  int64_t lda = 0, ldb = 0, ldc = 0;
  int64_t batch_stride_a = 0, batch_stride_b = 0, batch_stride_c = 0;
};

// x (n, c, h, w), weight (o, c / groups, kernel_h, kernel_w), y (n, o, out_h, out_w); all contiguous.
// Padding is symmetric and dilation is PyTorch's (1 = dense kernel).
struct Conv2dDims {
  int64_t n = 0, c = 0, h = 0, w = 0;
  int64_t o = 0, kernel_h = 0, kernel_w = 0;
  int64_t out_h = 0, out_w = 0;
  int64_t stride_h = 1, stride_w = 1, padding_h = 0, padding_w = 0, dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
  // x, y and their gradients stored (n, h, w, c) (is_channels_last); the fast kernels only.
  bool channels_last = false;
};

// x (n, c, h, w) -> y (n, c, out_h, out_w); padding symmetric, at most half the kernel.
struct Pool2dDims {
  int64_t n = 0, c = 0, h = 0, w = 0, out_h = 0, out_w = 0;
  int64_t kernel_h = 0, kernel_w = 0, stride_h = 1, stride_w = 1, padding_h = 0, padding_w = 0;
  bool count_include_pad = true;  // average pooling only
};

namespace ref {

template <class T>
void matmul(const T* a, const T* b, const T* bias, T* c, const MatmulDims& d) {
  for (int64_t e = 0; e < d.batch; ++e) {
    const T* ae = a + e * d.batch_stride_a;
    const T* be = b + e * d.batch_stride_b;
    T* ce = c + e * d.batch_stride_c;
    for (int64_t i = 0; i < d.m; ++i)
      for (int64_t j = 0; j < d.n; ++j) {
        double total = bias ? double(bias[j]) : 0.0;
        for (int64_t p = 0; p < d.k; ++p) {
          double av = double(d.transpose_a ? ae[p * d.lda + i] : ae[i * d.lda + p]);
          double bv = double(d.transpose_b ? be[j * d.ldb + p] : be[p * d.ldb + j]);
          total += av * bv;
        }
        ce[i * d.ldc + j] = T(total);
      }
  }
}

// Calls fn(x_index, w_index, y_index) for every (input, weight, output) triple that meets in the
// convolution sum: the one loop nest the three convolution kernels share.
template <class Fn>
void for_each_conv_term(const Conv2dDims& d, Fn&& fn) {
  const int64_t cg = d.c / d.groups, og = d.o / d.groups;
  for (int64_t b = 0; b < d.n; ++b)
    for (int64_t o = 0; o < d.o; ++o) {
      const int64_t g = o / og;
      for (int64_t oh = 0; oh < d.out_h; ++oh)
        for (int64_t ow = 0; ow < d.out_w; ++ow) {
          const int64_t y_index = ((b * d.o + o) * d.out_h + oh) * d.out_w + ow;
          for (int64_t ci = 0; ci < cg; ++ci)
            for (int64_t kh = 0; kh < d.kernel_h; ++kh) {
              const int64_t ih = oh * d.stride_h - d.padding_h + kh * d.dilation_h;
              if (ih < 0 || ih >= d.h) continue;
              for (int64_t kw = 0; kw < d.kernel_w; ++kw) {
                const int64_t iw = ow * d.stride_w - d.padding_w + kw * d.dilation_w;
                if (iw < 0 || iw >= d.w) continue;
                const int64_t x_index = ((b * d.c + g * cg + ci) * d.h + ih) * d.w + iw;
                const int64_t w_index = ((o * cg + ci) * d.kernel_h + kh) * d.kernel_w + kw;
                fn(x_index, w_index, y_index);
              }
            }
        }
    }
}

// y = conv(x, weight) + bias; bias (o) may be null.
template <class T>
void conv2d_forward(const T* x, const T* weight, const T* bias, T* y, const Conv2dDims& d) {
  const int64_t plane = d.out_h * d.out_w;
  std::vector<double> acc(size_t(d.n * d.o * plane), 0.0);
  for_each_conv_term(d, [&](int64_t xi, int64_t wi, int64_t yi) { acc[yi] += double(x[xi]) * double(weight[wi]); });
  for (int64_t i = 0; i < int64_t(acc.size()); ++i) {
    double b = bias ? double(bias[(i / plane) % d.o]) : 0.0;
    y[i] = T(acc[i] + b);
  }
}

// grad_x = d(sum(y * grad_y)) / dx.
template <class T>
void conv2d_backward_data(const T* grad_y, const T* weight, T* grad_x, const Conv2dDims& d) {
  std::vector<double> acc(size_t(d.n * d.c * d.h * d.w), 0.0);
  for_each_conv_term(d, [&](int64_t xi, int64_t wi, int64_t yi) { acc[xi] += double(grad_y[yi]) * double(weight[wi]); });
  for (size_t i = 0; i < acc.size(); ++i) grad_x[i] = T(acc[i]);
}

// grad_weight (o, c / groups, kernel_h, kernel_w); grad_bias (o) is skipped when null.
template <class T>
void conv2d_backward_weights(const T* x, const T* grad_y, T* grad_weight, T* grad_bias, const Conv2dDims& d) {
  std::vector<double> acc(size_t(d.o * (d.c / d.groups) * d.kernel_h * d.kernel_w), 0.0);
  for_each_conv_term(d, [&](int64_t xi, int64_t wi, int64_t yi) { acc[wi] += double(x[xi]) * double(grad_y[yi]); });
  for (size_t i = 0; i < acc.size(); ++i) grad_weight[i] = T(acc[i]);
  if (!grad_bias) return;
  const int64_t plane = d.out_h * d.out_w;
  for (int64_t o = 0; o < d.o; ++o) {
    double total = 0;
    for (int64_t b = 0; b < d.n; ++b)
      for (int64_t i = 0; i < plane; ++i) total += double(grad_y[(b * d.o + o) * plane + i]);
    grad_bias[o] = T(total);
  }
}

// Max pooling; argmax (n, c, out_h, out_w) receives the index ih * w + iw of the first maximal
// input of each window (NaN counts as maximal, as PyTorch).
template <class T>
void max_pool2d_forward(const T* x, T* y, int32_t* argmax, const Pool2dDims& d) {
  for (int64_t plane = 0; plane < d.n * d.c; ++plane) {
    const T* xp = x + plane * d.h * d.w;
    for (int64_t oh = 0; oh < d.out_h; ++oh)
      for (int64_t ow = 0; ow < d.out_w; ++ow) {
        const int64_t h0 = oh * d.stride_h - d.padding_h, w0 = ow * d.stride_w - d.padding_w;
        double best = -std::numeric_limits<double>::infinity();
        int64_t best_index = -1;
        for (int64_t ih = std::max<int64_t>(h0, 0); ih < std::min(h0 + d.kernel_h, d.h); ++ih)
          for (int64_t iw = std::max<int64_t>(w0, 0); iw < std::min(w0 + d.kernel_w, d.w); ++iw) {
            double v = double(xp[ih * d.w + iw]);
            if (best_index < 0 || v > best || (std::isnan(v) && !std::isnan(best))) {
              best = v;
              best_index = ih * d.w + iw;
            }
          }
        const int64_t yi = (plane * d.out_h + oh) * d.out_w + ow;
        y[yi] = T(best);
        argmax[yi] = int32_t(best_index);
      }
  }
}

template <class T>
void max_pool2d_backward(const T* grad_y, const int32_t* argmax, T* grad_x, const Pool2dDims& d) {
  std::vector<double> acc(size_t(d.n * d.c * d.h * d.w), 0.0);
  const int64_t out_plane = d.out_h * d.out_w;
  for (int64_t i = 0; i < d.n * d.c * out_plane; ++i) acc[(i / out_plane) * d.h * d.w + argmax[i]] += double(grad_y[i]);
  for (size_t i = 0; i < acc.size(); ++i) grad_x[i] = T(acc[i]);
}

// PyTorch's divisor: with count_include_pad the window clipped to the padded input, else the
// number of real inputs in it.
inline int64_t avg_pool_divisor(const Pool2dDims& d, int64_t oh, int64_t ow) {
  const int64_t h0 = oh * d.stride_h - d.padding_h, w0 = ow * d.stride_w - d.padding_w;
  const int64_t h1 = std::min(h0 + d.kernel_h, d.h + d.padding_h), w1 = std::min(w0 + d.kernel_w, d.w + d.padding_w);
  if (d.count_include_pad) return (h1 - h0) * (w1 - w0);
  return (std::min(h1, d.h) - std::max<int64_t>(h0, 0)) * (std::min(w1, d.w) - std::max<int64_t>(w0, 0));
}

template <class T>
void avg_pool2d_forward(const T* x, T* y, const Pool2dDims& d) {
  for (int64_t plane = 0; plane < d.n * d.c; ++plane)
    for (int64_t oh = 0; oh < d.out_h; ++oh)
      for (int64_t ow = 0; ow < d.out_w; ++ow) {
        const int64_t h0 = oh * d.stride_h - d.padding_h, w0 = ow * d.stride_w - d.padding_w;
        double total = 0;
        for (int64_t ih = std::max<int64_t>(h0, 0); ih < std::min(h0 + d.kernel_h, d.h); ++ih)
          for (int64_t iw = std::max<int64_t>(w0, 0); iw < std::min(w0 + d.kernel_w, d.w); ++iw)
            total += double(x[(plane * d.h + ih) * d.w + iw]);
        y[(plane * d.out_h + oh) * d.out_w + ow] = T(total / double(avg_pool_divisor(d, oh, ow)));
      }
}

template <class T>
void avg_pool2d_backward(const T* grad_y, T* grad_x, const Pool2dDims& d) {
  std::vector<double> acc(size_t(d.n * d.c * d.h * d.w), 0.0);
  for (int64_t plane = 0; plane < d.n * d.c; ++plane)
    for (int64_t oh = 0; oh < d.out_h; ++oh)
      for (int64_t ow = 0; ow < d.out_w; ++ow) {
        const int64_t h0 = oh * d.stride_h - d.padding_h, w0 = ow * d.stride_w - d.padding_w;
        const double g = double(grad_y[(plane * d.out_h + oh) * d.out_w + ow]) / double(avg_pool_divisor(d, oh, ow));
        for (int64_t ih = std::max<int64_t>(h0, 0); ih < std::min(h0 + d.kernel_h, d.h); ++ih)
          for (int64_t iw = std::max<int64_t>(w0, 0); iw < std::min(w0 + d.kernel_w, d.w); ++iw)
            acc[size_t((plane * d.h + ih) * d.w + iw)] += g;
      }
  for (size_t i = 0; i < acc.size(); ++i) grad_x[i] = T(acc[i]);
}

// PyTorch's adaptive bins along one axis: [floor(i * in / out), ceil((i + 1) * in / out)).
inline int64_t adaptive_start(int64_t i, int64_t in, int64_t out) { return (i * in) / out; }
inline int64_t adaptive_end(int64_t i, int64_t in, int64_t out) { return ((i + 1) * in + out - 1) / out; }

// x (planes, h, w) -> y (planes, out_h, out_w), each output the mean of its bin.
template <class T>
void adaptive_avg_pool2d_forward(const T* x, T* y, int64_t planes, int64_t h, int64_t w, int64_t out_h, int64_t out_w) {
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t oh = 0; oh < out_h; ++oh)
      for (int64_t ow = 0; ow < out_w; ++ow) {
        const int64_t h0 = adaptive_start(oh, h, out_h), h1 = adaptive_end(oh, h, out_h);
        const int64_t w0 = adaptive_start(ow, w, out_w), w1 = adaptive_end(ow, w, out_w);
        double total = 0;
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) total += double(x[(p * h + ih) * w + iw]);
        y[(p * out_h + oh) * out_w + ow] = T(total / double((h1 - h0) * (w1 - w0)));
      }
}

template <class T>
void adaptive_avg_pool2d_backward(const T* grad_y, T* grad_x, int64_t planes, int64_t h, int64_t w, int64_t out_h,
                                  int64_t out_w) {
  std::vector<double> acc(size_t(planes * h * w), 0.0);
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t oh = 0; oh < out_h; ++oh)
      for (int64_t ow = 0; ow < out_w; ++ow) {
        const int64_t h0 = adaptive_start(oh, h, out_h), h1 = adaptive_end(oh, h, out_h);
        const int64_t w0 = adaptive_start(ow, w, out_w), w1 = adaptive_end(ow, w, out_w);
        const double g = double(grad_y[(p * out_h + oh) * out_w + ow]) / double((h1 - h0) * (w1 - w0));
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) acc[size_t((p * h + ih) * w + iw)] += g;
      }
  for (size_t i = 0; i < acc.size(); ++i) grad_x[i] = T(acc[i]);
}

}  // namespace ref
}  // namespace kernels
}  // namespace frugal
