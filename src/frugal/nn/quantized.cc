// int8 hooks, range observers and batch-norm folding (nn/quantized.h). The hooks call the int8
// kernels directly: inference only, so there is nothing for autograd to record.
#include "frugal/nn/quantized.h"

#include <algorithm>
#include <cmath>

#include "frugal/autograd/autograd.h"
#include "frugal/autograd/ops.h"
#include "frugal/base/error.h"
#include "frugal/kernels/cpu/int8.h"
#include "frugal/kernels/cpu/int8_conv.h"
#include "frugal/nn/sequential.h"

namespace frugal {
namespace nn {

QuantizedWeight quantize_per_channel(const Tensor& weight) {
  Tensor w = weight.detach().to(DType::f32).contiguous();
  const int64_t out = w.size(0), per = out == 0 ? 0 : w.numel() / out;
  QuantizedWeight q{Tensor::empty(w.shape(), DType::i8), Tensor::empty({out}, DType::f32)};
  const float* src = w.data<float>();
  int8_t* values = q.values.data<int8_t>();
  float* scale = q.scale.data<float>();
  for (int64_t o = 0; o < out; ++o) {
    float m = 0;
    for (int64_t i = 0; i < per; ++i) m = std::max(m, std::abs(src[o * per + i]));
    scale[o] = m > 0 ? m / 127.0f : 1.0f;
    const float inverse = 1.0f / scale[o];
    for (int64_t i = 0; i < per; ++i)
      values[o * per + i] = int8_t(std::clamp(std::nearbyint(src[o * per + i] * inverse), -127.0f, 127.0f));
  }
  return q;
}

Tensor dequantize_per_channel(const QuantizedWeight& weight) {
  Tensor out = Tensor::empty(weight.values.shape(), DType::f32);
  const int64_t channels = weight.values.size(0), per = channels == 0 ? 0 : weight.values.numel() / channels;
  const int8_t* values = weight.values.data<int8_t>();
  const float* scale = weight.scale.data<float>();
  float* y = out.data<float>();
  for (int64_t o = 0; o < channels; ++o)
    for (int64_t i = 0; i < per; ++i) y[o * per + i] = float(values[o * per + i]) * scale[o];
  return out;
}

namespace {

void check_layer(const QuantizedLayer& q, const Tensor& weight, const std::string& name) {
  auto fail = [&](const std::string& what) { throw InputError(name + ": " + what); };
  if (q.weight.values.dtype() != DType::i8) fail("weight should be i8, got " + std::string(dtype_name(q.weight.values.dtype())));
  if (q.weight.values.shape() != weight.shape())
    fail("weight " + shape_str(q.weight.values.shape()) + " differs from the model's " + shape_str(weight.shape()));
  const int64_t out = weight.size(0);
  if (q.weight.scale.dtype() != DType::f32 || q.weight.scale.numel() != out)
    fail("weight_scale holds " + std::to_string(q.weight.scale.numel()) + " values, expected " + std::to_string(out) +
         " f32 (one per output channel)");
  if (q.bias.defined() && (q.bias.dtype() != DType::f32 || q.bias.numel() != out))
    fail("bias holds " + std::to_string(q.bias.numel()) + " values, expected " + std::to_string(out) + " f32");
  if (q.input_scale.defined() && (q.input_scale.dtype() != DType::f32 || q.input_scale.numel() != 1))
    fail("input_scale holds " + std::to_string(q.input_scale.numel()) + " values, expected one f32");
  for (float s : q.weight.scale.to_vector<float>())
    if (!(s > 0) || !std::isfinite(s)) fail("weight_scale holds " + std::to_string(s) + ", expected finite values > 0");
  if (q.input_scale.defined() && !(q.input_scale.item() > 0 && std::isfinite(q.input_scale.item())))
    fail("input_scale is " + std::to_string(q.input_scale.item()) + ", expected a finite value > 0");
}

// The static input scale times each channel's weight scale: the one multiplier per column.
Tensor combined_scale(const QuantizedLayer& q) {
  Tensor out = q.weight.scale.clone();
  if (q.input_scale.defined()) {
    const float s = float(q.input_scale.item());
    float* v = out.data<float>();
    for (int64_t i = 0; i < out.numel(); ++i) v[i] *= s;
  }
  return out;
}

class Int8LinearHook : public LayerHook {
 public:
  explicit Int8LinearHook(const QuantizedLayer& q)
      : q_(q), scale_(combined_scale(q)), bias_(q.bias.defined() ? q.bias.contiguous() : Tensor()) {}
  Tensor forward(const Tensor& x_in, bool relu) override {
    Tensor x = (x_in.dtype() == DType::f32 ? x_in.detach() : x_in.detach().to(DType::f32)).contiguous();
    const int64_t in = q_.weight.values.size(1), out = q_.weight.values.size(0), m = x.numel() / in;
    Shape shape = x.shape();
    shape.back() = out;
    Tensor y = Tensor::empty(shape, DType::f32);  // (..., out)
    if (m == 0) return y;
    Tensor xq = Tensor::empty({m, in}, DType::i8);  // (m, in)
    kernels::Int8Epilogue e;
    e.col_scale = scale_.data<float>();
    e.per_column = true;
    e.bias = bias_.defined() ? bias_.data<float>() : nullptr;
    e.relu = relu;
    Tensor row_scale;
    if (q_.input_scale.defined()) {
      kernels::cpu::quantize_s8(x.data<float>(), m * in, float(q_.input_scale.item()), xq.data<int8_t>());
    } else {
      row_scale = Tensor::empty({m}, DType::f32);
      kernels::cpu::quantize_rows_s8(x.data<float>(), m, in, in, xq.data<int8_t>(), row_scale.data<float>());
      e.row_scale = row_scale.data<float>();
    }
    kernels::MatmulDims d;
    d.m = m, d.n = out, d.k = in, d.transpose_b = true, d.lda = in, d.ldb = in, d.ldc = out;
    kernels::cpu::matmul_s8(xq.data<int8_t>(), q_.weight.values.data<int8_t>(), y.data<float>(), d, e);
    return y;
  }

 private:
  QuantizedLayer q_;
  Tensor scale_, bias_;
};

class Int8ConvHook : public LayerHook {
 public:
  Int8ConvHook(const QuantizedLayer& q, const Conv2dOptions& options)
      : q_(q), options_(options), scale_(combined_scale(q)), bias_(q.bias.defined() ? q.bias.contiguous() : Tensor()) {}
  Tensor forward(const Tensor& x_in, bool relu) override { return run(x_in, relu, false); }
  Tensor forward_relu_pool2x2(const Tensor& x_in) override { return run(x_in, true, true); }

 private:
  Tensor run(const Tensor& x_in, bool relu, bool pool) {
    Tensor x = to_channels_last(x_in.dtype() == DType::f32 ? x_in.detach() : x_in.detach().to(DType::f32));
    kernels::Conv2dDims d;
    d.n = x.size(0), d.c = x.size(1), d.h = x.size(2), d.w = x.size(3);
    d.o = q_.weight.values.size(0), d.kernel_h = q_.weight.values.size(2), d.kernel_w = q_.weight.values.size(3);
    d.stride_h = options_.stride_h, d.stride_w = options_.stride_w, d.padding_h = options_.padding_h;
    d.padding_w = options_.padding_w, d.dilation_h = options_.dilation_h, d.dilation_w = options_.dilation_w;
    d.out_h = (d.h + 2 * d.padding_h - d.dilation_h * (d.kernel_h - 1) - 1) / d.stride_h + 1;
    d.out_w = (d.w + 2 * d.padding_w - d.dilation_w * (d.kernel_w - 1) - 1) / d.stride_w + 1;
    d.channels_last = true;
    const kernels::Int8ConvEpilogue e{scale_.data<float>(), bias_.defined() ? bias_.data<float>() : nullptr, relu};
    const int64_t oh = pool ? d.out_h / 2 : d.out_h, ow = pool ? d.out_w / 2 : d.out_w;
    Tensor y = empty_channels_last({d.n, d.o, oh, ow}, DType::f32);
    // A few images at a time: their codes, int32 sums and output stay in cache between the
    // quantization, the convolution and its output pass (a whole batch's sums are tens of MB).
    const int64_t chunk = std::max<int64_t>(1, kChunkBytes / std::max<int64_t>(1, d.out_h * d.out_w * d.o * 4));
    Tensor xq = Tensor::empty({std::min(chunk, d.n), d.h, d.w, d.c}, q_.input_unsigned ? DType::u8 : DType::i8);
    for (int64_t n0 = 0; n0 < d.n; n0 += chunk) {
      kernels::Conv2dDims part = d;
      part.n = std::min(chunk, d.n - n0);
      const int64_t in_pixels = d.h * d.w * d.c;
      kernels::cpu::quantize_activation(x.data<float>() + n0 * in_pixels, part.n * in_pixels,
                                        float(q_.input_scale.item()), q_.input_unsigned, xq.raw_data());
      float* out = y.data<float>() + n0 * oh * ow * d.o;
      if (pool) kernels::cpu::conv2d_s8_relu_pool2x2(xq.raw_data(), q_.input_unsigned, q_.weight.values.data<int8_t>(), out, part, e);
      else kernels::cpu::conv2d_s8(xq.raw_data(), q_.input_unsigned, q_.weight.values.data<int8_t>(), out, part, e);
    }
    return y;
  }

  // The int32 sums of one chunk of images: measured on the example CNN (Zen 4, 2 threads, eval
  // --repeat 10, vs fp32): 0.5 MB 1.9x, 4 MB 2.1-2.3x, 12 MB 2.0x, the whole batch (1000 images,
  // 50 MB) 1.9x.
  static constexpr int64_t kChunkBytes = int64_t(4) << 20;
  QuantizedLayer q_;
  Conv2dOptions options_;
  Tensor scale_, bias_;
};

// Observes the input, then runs the layer's own f32 computation.
class ObserverHook : public LayerHook {
 public:
  ObserverHook(Module* layer, std::shared_ptr<RangeObserver> observer) : layer_(layer), observer_(std::move(observer)) {}
  Tensor forward(const Tensor& x, bool relu) override {
    observer_->observe(x);
    Tensor y;
    if (auto* linear = dynamic_cast<Linear*>(layer_)) {
      y = relu ? linear_relu(x, linear->weight(), linear->bias()) : frugal::linear(x, linear->weight(), linear->bias());
      return y;
    }
    auto* conv = static_cast<Conv2d*>(layer_);
    y = conv2d(x, conv->weight(), conv->bias(), conv->options());
    return relu ? frugal::relu(y) : y;
  }

 private:
  Module* layer_;
  std::shared_ptr<RangeObserver> observer_;
};

}  // namespace

void set_int8(Linear& layer, const QuantizedLayer& quantized, const std::string& name) {
  if (layer.has_lora()) throw InputError(name + ": a LoRA adapter on an int8 layer; merge the adapters first");
  check_layer(quantized, layer.weight(), name);
  layer.set_hook(std::make_shared<Int8LinearHook>(quantized));
}

void set_int8(Conv2d& layer, const QuantizedLayer& quantized, const std::string& name) {
  check_layer(quantized, layer.weight(), name);
  if (layer.options().groups != 1) throw InputError(name + ": int8 convolution takes one group only");
  if (!quantized.input_scale.defined()) throw InputError(name + ": a convolution needs its input_scale (static)");
  layer.set_hook(std::make_shared<Int8ConvHook>(quantized, layer.options()));
}

std::vector<std::pair<std::string, Module*>> quantizable_layers(Module& model) {
  std::vector<std::pair<std::string, Module*>> out;
  for (auto& [name, module] : model.named_modules())
    if (auto* conv = dynamic_cast<Conv2d*>(module); conv && conv->weight().size(1) < kInt8MinConvChannels) continue;
    else if (dynamic_cast<Linear*>(module) || conv) out.emplace_back(name, module);
  return out;
}

void RangeObserver::observe(const Tensor& x_in) {
  Tensor x = x_in.detach().to(DType::f32).contiguous();
  const float* v = x.data<float>();
  const int64_t n = x.numel();
  for (int64_t i = 0; i < n; ++i) {
    min_ = std::min(min_, double(v[i]));
    abs_max_ = std::max(abs_max_, double(std::abs(v[i])));
  }
  // A strided sample of at most 64K values per call: percentiles over a few hundred samples stay
  // within ~4M kept values.
  const int64_t stride = std::max<int64_t>(1, n / 65536);
  if (sample_.size() < (size_t(1) << 22))
    for (int64_t i = 0; i < n; i += stride) sample_.push_back(std::abs(v[i]));
  count_ += n;
}

double RangeObserver::abs_percentile(double p) const {
  if (p >= 100 || sample_.empty()) return abs_max_;
  std::vector<float> s = sample_;
  const size_t k = std::min(s.size() - 1, size_t(std::ceil(p / 100 * double(s.size()))) - (p > 0 ? 1 : 0));
  std::nth_element(s.begin(), s.begin() + std::ptrdiff_t(k), s.end());
  return s[k];
}

std::vector<std::shared_ptr<RangeObserver>> observe_inputs(Module& model) {
  std::vector<std::shared_ptr<RangeObserver>> observers;
  for (auto& [name, module] : quantizable_layers(model)) {
    if (auto* linear = dynamic_cast<Linear*>(module); linear && linear->has_lora())
      throw InputError(name + ": a LoRA adapter on a layer to quantize; merge the adapters first (frugal export --merge)");
    auto observer = std::make_shared<RangeObserver>();
    auto hook = std::make_shared<ObserverHook>(module, observer);
    if (auto* linear = dynamic_cast<Linear*>(module)) linear->set_hook(hook);
    else static_cast<Conv2d*>(module)->set_hook(hook);
    observers.push_back(observer);
  }
  return observers;
}

void remove_hooks(Module& model) {
  for (auto& [name, module] : quantizable_layers(model)) {
    if (auto* linear = dynamic_cast<Linear*>(module)) linear->set_hook(nullptr);
    else static_cast<Conv2d*>(module)->set_hook(nullptr);
  }
}

void make_identity(BatchNorm& bn) {
  autograd::NoGradGuard no_grad;
  Tensor(bn.running_mean()).fill(0.0);
  // var + eps = 1 up to f32 rounding: the normalization divides by sqrt(1) within an ulp
  Tensor(bn.running_var()).fill(1.0 - bn.eps());
  if (bn.weight().defined()) Tensor(bn.weight()).fill(1.0);
  if (bn.bias().defined()) Tensor(bn.bias()).fill(0.0);
  bn.set_folded(true);
}

std::vector<FoldedConv> fold_batch_norms(Module& model) {
  std::vector<FoldedConv> folded;
  for (auto& [prefix, module] : model.named_modules()) {
    auto* sequential = dynamic_cast<Sequential*>(module);
    if (!sequential) continue;
    const auto& children = sequential->named_children();
    for (size_t i = 0; i + 1 < children.size(); ++i) {
      auto* conv = dynamic_cast<Conv2d*>(children[i].second.get());
      auto* bn = dynamic_cast<BatchNorm2d*>(children[i + 1].second.get());
      if (!conv || !bn || !bn->running_mean().defined() || conv->weight().size(1) < kInt8MinConvChannels) continue;
      const std::string base = prefix.empty() ? "" : prefix + ".";
      FoldedConv f{base + children[i].first, base + children[i + 1].first, conv->weight().detach().clone(), Tensor()};
      const int64_t out = f.weight.size(0), per = f.weight.numel() / out;
      f.bias = conv->bias().defined() ? conv->bias().detach().clone() : Tensor::zeros({out});
      const auto mean = bn->running_mean().to_vector<float>(), var = bn->running_var().to_vector<float>();
      const auto gamma = bn->weight().defined() ? bn->weight().to_vector<float>() : std::vector<float>(size_t(out), 1.0f);
      const auto beta = bn->bias().defined() ? bn->bias().to_vector<float>() : std::vector<float>(size_t(out), 0.0f);
      float* w = f.weight.data<float>();
      float* b = f.bias.data<float>();
      for (int64_t o = 0; o < out; ++o) {
        const double factor = double(gamma[size_t(o)]) / std::sqrt(double(var[size_t(o)]) + bn->eps());
        for (int64_t i2 = 0; i2 < per; ++i2) w[o * per + i2] = float(double(w[o * per + i2]) * factor);
        b[o] = float((double(b[o]) - mean[size_t(o)]) * factor + beta[size_t(o)]);
      }
      make_identity(*bn);
      folded.push_back(std::move(f));
    }
  }
  return folded;
}

}  // namespace nn
}  // namespace frugal
