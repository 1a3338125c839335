// fake_quantize (fake_quantize.h): one pass forward, and a saved mask of where x fell inside the
// clipping range for the straight-through backward (1 byte per element).
#include "frugal/autograd/fake_quantize.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "frugal/autograd/autograd.h"
#include "frugal/base/error.h"
#include "frugal/base/parallel.h"

namespace frugal {

namespace {
template <class T>
void fake_quantize_kernel(const T* x, const float* scale, int64_t channels, int64_t per, int64_t qmin, int64_t qmax,
                          T* y, uint8_t* inside) {
  parallel_for(channels * per, 1 << 14, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const double s = scale[channels == 1 ? 0 : i / per];
      const double r = std::nearbyint(double(x[i]) / s);  // half to even
      const double q = std::clamp(r, double(qmin), double(qmax));
      y[i] = T(q * s);
      // inside the clipping range, bounds included; NaN counts as outside
      const double v = double(x[i]) / s;
      inside[i] = v >= double(qmin) && v <= double(qmax);
    }
  });
}
}  // namespace

Tensor fake_quantize(const Tensor& x, const Tensor& scale_in, int64_t qmin, int64_t qmax) {
  FRUGAL_CHECK(x.dtype() == DType::f32 || x.dtype() == DType::f64, "fake_quantize: f32 or f64 input");
  FRUGAL_CHECK(qmin < qmax, "fake_quantize: qmin < qmax");
  Tensor scale = scale_in.detach().to(DType::f32).contiguous();
  const int64_t channels = scale.numel();
  FRUGAL_CHECK(channels == 1 || (x.rank() >= 1 && x.size(0) == channels),
               "fake_quantize: scale (1) or one per slice along axis 0");
  for (float s : scale.to_vector<float>()) FRUGAL_CHECK(s > 0 && std::isfinite(s), "fake_quantize: scale > 0, finite");
  Tensor xc = x.contiguous();
  const int64_t n = xc.numel(), per = channels == 1 ? n : n / channels;
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  Tensor inside = Tensor::empty(x.shape(), DType::u8);
  if (x.dtype() == DType::f32)
    fake_quantize_kernel(xc.data<float>(), scale.data<float>(), channels, per, qmin, qmax, y.data<float>(),
                         inside.data<uint8_t>());
  else
    fake_quantize_kernel(xc.data<double>(), scale.data<float>(), channels, per, qmin, qmax, y.data<double>(),
                         inside.data<uint8_t>());
  if (!autograd::needs_grad({&x})) return y;
  return autograd::record(y, "fake_quantize", {x}, [inside](const Tensor& g_in) -> std::vector<Tensor> {
    Tensor g = g_in.contiguous();
    Tensor grad = Tensor::empty(g.shape(), g.dtype());
    const uint8_t* m = inside.data<uint8_t>();
    const int64_t count = g.numel();
    if (g.dtype() == DType::f32) {
      const float* src = g.data<float>();
      float* dst = grad.data<float>();
      for (int64_t i = 0; i < count; ++i) dst[i] = m[i] ? src[i] : 0.0f;
    } else {
      const double* src = g.data<double>();
      double* dst = grad.data<double>();
      for (int64_t i = 0; i < count; ++i) dst[i] = m[i] ? src[i] : 0.0;
    }
    return {grad};
  });
}

}  // namespace frugal
