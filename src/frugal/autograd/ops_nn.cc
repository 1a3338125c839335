// Losses (cross_entropy, mse_loss), norms (layer_norm, batch_norm) and scaled_dot_product_attention:
// input checks, kernel dispatch and one backward rule each, every rule a fused kernel of its own.
// Limits: cross_entropy takes (N, C) logits and i64 targets only; batch_norm takes (N, C) or (N, C, H, W).
// The first block's convolution and attention's products count their FLOPs (flops.h); the rest is
// elementwise or row-wise work, not counted.
#include <cmath>
#include <string>

#include "frugal/autograd/flops.h"
#include "frugal/autograd/ops.h"
#include "frugal/autograd/precision.h"
#include "frugal/kernels/cpu/convert.h"
#include "frugal/kernels/cpu/dense.h"
#include "frugal/kernels/cpu/nn.h"
#include "frugal/kernels/cpu/stem.h"
#include "frugal/kernels/kernels.h"
#include "frugal/kernels/ref/activation.h"
#include "frugal/kernels/ref/nn.h"

namespace frugal {

namespace {
std::string dtype_str(DType dtype) { return std::string(dtype_name(dtype)); }

template <class T>
const T* data_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

template <class T>
T* mutable_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

Tensor contiguous_or_undefined(const Tensor& t) { return t.defined() ? t.contiguous().detach() : Tensor(); }

// Checks an optional per-channel parameter (weight, bias, running stats) of an op: shape (channels),
// dtype the input's (f32 for a bf16 input).
void check_channel_param(const char* op, const char* what, const Tensor& t, int64_t channels, DType dtype) {
  if (!t.defined()) return;
  if (t.shape() != Shape{channels})
    throw InputError(std::string(op) + ": " + what + " must have shape (" + std::to_string(channels) + "), got " +
                     shape_str(t.shape()));
  if (t.dtype() != dtype)
    throw InputError(std::string(op) + ": " + what + " is " + dtype_str(t.dtype()) + ", expected " + dtype_str(dtype));
}

// Batch norm's optional parameters for C channels in `dtype`; the running statistics come in pairs.
void check_batch_norm_params(const char* op, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                             const Tensor& running_var, int64_t C, DType dtype) {
  check_channel_param(op, "weight", weight, C, dtype);
  check_channel_param(op, "bias", bias, C, dtype);
  check_channel_param(op, "running_mean", running_mean, C, dtype);
  check_channel_param(op, "running_var", running_var, C, dtype);
  if (running_mean.defined() != running_var.defined())
    throw InputError(std::string(op) + ": running_mean and running_var must be given together");
}

void check_float_input(const char* op, const Tensor& t) {
  if (t.dtype() != DType::f32 && t.dtype() != DType::f64)
    throw InputError(std::string(op) + ": expected a f32 or f64 tensor, got " + dtype_str(t.dtype()));
}

// Sum of a contiguous f32/f64 tensor, in double.
double sum_values(const Tensor& t) {
  double total = 0;
  if (t.dtype() == DType::f64) {
    const double* p = t.data<double>();
    for (int64_t i = 0; i < t.numel(); ++i) total += p[i];
  } else {
    const float* p = t.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) total += p[i];
  }
  return total;
}
}  // namespace

// ---- cross entropy ----

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, const CrossEntropyOptions& options) {
  check_float_input("cross_entropy", logits);
  if (logits.rank() != 2)
    throw InputError("cross_entropy: logits must be (N, C), got " + shape_str(logits.shape()));
  const int64_t N = logits.size(0), C = logits.size(1);
  if (targets.dtype() != DType::i64)
    throw InputError("cross_entropy: targets must be i64 class indices, got " + dtype_str(targets.dtype()));
  if (targets.shape() != Shape{N})
    throw InputError("cross_entropy: targets must have shape (" + std::to_string(N) + ") to match logits " +
                     shape_str(logits.shape()) + ", got " + shape_str(targets.shape()));
  const double smoothing = options.label_smoothing;
  if (!(smoothing >= 0.0 && smoothing <= 1.0))
    throw InputError("cross_entropy: label_smoothing must be in [0, 1], got " + std::to_string(smoothing));

  Tensor x = logits.contiguous().detach();   // (N, C)
  Tensor t = targets.contiguous().detach();  // (N)
  const int64_t* tp = t.data<int64_t>();
  int64_t counted = 0;
  for (int64_t n = 0; n < N; ++n) {
    if (tp[n] == options.ignore_index) continue;
    if (tp[n] < 0 || tp[n] >= C)
      throw InputError("cross_entropy: target at row " + std::to_string(n) + " is " + std::to_string(tp[n]) +
                       ", expected a class index in [0, " + std::to_string(C) + ") or ignore_index " +
                       std::to_string(options.ignore_index));
    ++counted;
  }

  Tensor loss_rows = Tensor::empty({N}, x.dtype());  // (N)
  Tensor lse = Tensor::empty({N}, x.dtype());        // (N)
  const int64_t ignore = options.ignore_index;
  kernels::dispatch_float(
      x.dtype(), "cross_entropy",
      [&](auto tag) {
        using T = decltype(tag);
        kernels::ref::cross_entropy_forward<T>(x.data<T>(), tp, loss_rows.data<T>(), lse.data<T>(), N, C, smoothing,
                                               ignore);
      },
      [&] {
        kernels::cpu::cross_entropy_forward(x.data<float>(), tp, loss_rows.data<float>(), lse.data<float>(), N, C,
                                            smoothing, ignore);
      });

  Tensor out;
  double scale = 1.0;  // d(out) / d(loss_rows[n]) for counted rows
  switch (options.reduction) {
    case Reduction::none: out = loss_rows; break;
    case Reduction::sum: out = Tensor::scalar(sum_values(loss_rows), x.dtype()); break;
    case Reduction::mean:
      // As PyTorch: the mean is over rows that are not ignored (NaN when every row is ignored).
      out = Tensor::scalar(sum_values(loss_rows) / double(counted), x.dtype());
      scale = 1.0 / double(counted);
      break;
  }
  if (!autograd::needs_grad({&logits})) return out;
  const int64_t grad_stride = options.reduction == Reduction::none ? 1 : 0;
  return autograd::record(out, "cross_entropy", {logits}, [=](const Tensor& g_in) -> std::vector<Tensor> {
    Tensor g = g_in.contiguous();
    Tensor dx = Tensor::empty({N, C}, x.dtype());  // (N, C)
    kernels::dispatch_float(
        x.dtype(), "cross_entropy backward",
        [&](auto tag) {
          using T = decltype(tag);
          kernels::ref::cross_entropy_backward<T>(x.data<T>(), t.data<int64_t>(), lse.data<T>(), g.data<T>(),
                                                  grad_stride, scale, dx.data<T>(), N, C, smoothing, ignore);
        },
        [&] {
          kernels::cpu::cross_entropy_backward(x.data<float>(), t.data<int64_t>(), lse.data<float>(),
                                               g.data<float>(), grad_stride, scale, dx.data<float>(), N, C,
                                               smoothing, ignore);
        });
    return {dx};
  });
}

// ---- mse ----

Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  check_float_input("mse_loss", input);
  if (input.shape() != target.shape())
    throw InputError("mse_loss: input " + shape_str(input.shape()) + " and target " + shape_str(target.shape()) +
                     " must have the same shape");
  if (input.dtype() != target.dtype())
    throw InputError("mse_loss: input is " + dtype_str(input.dtype()) + " but target is " +
                     dtype_str(target.dtype()));
  Tensor x = input.contiguous().detach(), y = target.contiguous().detach();
  const int64_t n = x.numel();
  Tensor out;
  double scale = 1.0;
  if (reduction == Reduction::none) {
    out = Tensor::empty(x.shape(), x.dtype());
    kernels::dispatch_float(
        x.dtype(), "mse_loss",
        [&](auto tag) {
          using T = decltype(tag);
          kernels::ref::mse_elements<T>(x.data<T>(), y.data<T>(), out.data<T>(), n);
        },
        [&] { kernels::cpu::mse_elements(x.data<float>(), y.data<float>(), out.data<float>(), n); });
  } else {
    double total = 0;
    kernels::dispatch_float(
        x.dtype(), "mse_loss",
        [&](auto tag) {
          using T = decltype(tag);
          total = kernels::ref::mse_sum<T>(x.data<T>(), y.data<T>(), n);
        },
        [&] { total = kernels::cpu::mse_sum(x.data<float>(), y.data<float>(), n); });
    if (reduction == Reduction::mean) scale = 1.0 / double(n);
    out = Tensor::scalar(total * scale, x.dtype());
  }
  if (!autograd::needs_grad({&input, &target})) return out;
  const bool need_x = input.requires_grad(), need_y = target.requires_grad();
  const int64_t grad_stride = reduction == Reduction::none ? 1 : 0;
  return autograd::record(out, "mse_loss", {input, target}, [=](const Tensor& g_in) -> std::vector<Tensor> {
    Tensor g = g_in.contiguous();
    Tensor dx = need_x ? Tensor::empty(x.shape(), x.dtype()) : Tensor();
    Tensor dy = need_y ? Tensor::empty(x.shape(), x.dtype()) : Tensor();
    kernels::dispatch_float(
        x.dtype(), "mse_loss backward",
        [&](auto tag) {
          using T = decltype(tag);
          kernels::ref::mse_backward<T>(x.data<T>(), y.data<T>(), g.data<T>(), grad_stride, scale,
                                        mutable_or_null<T>(dx), mutable_or_null<T>(dy), n);
        },
        [&] {
          kernels::cpu::mse_backward(x.data<float>(), y.data<float>(), g.data<float>(), grad_stride, scale,
                                     mutable_or_null<float>(dx), mutable_or_null<float>(dy), n);
        });
    return {dx, dy};
  });
}

// ---- layer norm ----

Tensor layer_norm(const Tensor& input, const Tensor& weight, const Tensor& bias, double eps) {
  check_float_input("layer_norm", input);
  if (input.rank() < 1) throw InputError("layer_norm: input must have at least one axis, got a scalar");
  const int64_t C = input.size(-1);
  const int64_t M = C > 0 ? input.numel() / C : 0;
  check_channel_param("layer_norm", "weight", weight, C, input.dtype());
  check_channel_param("layer_norm", "bias", bias, C, input.dtype());
  Tensor x = input.contiguous().detach();  // (M, C)
  Tensor w = contiguous_or_undefined(weight), b = contiguous_or_undefined(bias);
  Tensor y = Tensor::empty(input.shape(), input.dtype());  // (M, C)
  Tensor mean = Tensor::empty({M}, input.dtype());         // (M)
  Tensor rstd = Tensor::empty({M}, input.dtype());         // (M)
  kernels::dispatch_float(
      x.dtype(), "layer_norm",
      [&](auto tag) {
        using T = decltype(tag);
        kernels::ref::layer_norm_forward<T>(x.data<T>(), data_or_null<T>(w), data_or_null<T>(b), y.data<T>(),
                                            mean.data<T>(), rstd.data<T>(), M, C, eps);
      },
      [&] {
        kernels::cpu::layer_norm_forward(x.data<float>(), data_or_null<float>(w), data_or_null<float>(b),
                                         y.data<float>(), mean.data<float>(), rstd.data<float>(), M, C, eps);
      });
  if (!autograd::needs_grad({&input, &weight, &bias})) return y;
  const bool need_x = input.requires_grad(), need_w = weight.defined() && weight.requires_grad(),
             need_b = bias.defined() && bias.requires_grad();
  return autograd::record(y, "layer_norm", {input, weight, bias}, [=](const Tensor& g_in) -> std::vector<Tensor> {
    Tensor g = g_in.contiguous();
    Tensor dx = need_x ? Tensor::empty(x.shape(), x.dtype()) : Tensor();
    Tensor dw = need_w ? Tensor::empty({C}, x.dtype()) : Tensor();
    Tensor db = need_b ? Tensor::empty({C}, x.dtype()) : Tensor();
    kernels::dispatch_float(
        x.dtype(), "layer_norm backward",
        [&](auto tag) {
          using T = decltype(tag);
          kernels::ref::layer_norm_backward<T>(x.data<T>(), data_or_null<T>(w), mean.data<T>(), rstd.data<T>(),
                                               g.data<T>(), mutable_or_null<T>(dx), mutable_or_null<T>(dw),
                                               mutable_or_null<T>(db), M, C);
        },
        [&] {
          kernels::cpu::layer_norm_backward(x.data<float>(), data_or_null<float>(w), mean.data<float>(),
                                            rstd.data<float>(), g.data<float>(), mutable_or_null<float>(dx),
                                            mutable_or_null<float>(dw), mutable_or_null<float>(db), M, C);
        });
    return {dx, dw, db};
  });
}

// ---- batch norm ----

namespace {
thread_local std::function<void(RunningStatsUpdate)> running_stats_capture;  // RunningStatsCapture's
}  // namespace

RunningStatsCapture::RunningStatsCapture(std::function<void(RunningStatsUpdate)> capture)
    : previous_(std::move(running_stats_capture)) {
  running_stats_capture = std::move(capture);
}
RunningStatsCapture::~RunningStatsCapture() { running_stats_capture = std::move(previous_); }

// PyTorch's rule (ops.h).
void apply_running_stats(const RunningStatsUpdate& u) {
  Tensor running_mean = u.running_mean, running_var = u.running_var;
  const Tensor &mean = u.mean, &var = u.var;
  const int64_t count = u.count;
  const double momentum = u.momentum;
  const int64_t C = mean.numel();
  std::vector<double> rm = running_mean.to_vector<double>(), rv = running_var.to_vector<double>();
  std::vector<double> bm = mean.to_vector<double>(), bv = var.to_vector<double>();
  const double unbias = double(count) / double(count - 1);
  for (size_t c = 0; c < size_t(C); ++c) {
    rm[c] = (1.0 - momentum) * rm[c] + momentum * bm[c];
    rv[c] = (1.0 - momentum) * rv[c] + momentum * bv[c] * unbias;
  }
  running_mean.copy_from(Tensor::from_vector(rm, {C}).to(running_mean.dtype()));
  running_var.copy_from(Tensor::from_vector(rv, {C}).to(running_var.dtype()));
}

namespace {
// batch_norm, and batch_norm_relu when relu: one pass writes max(y, 0) and backward masks the
// gradient by that output inside batch norm's own passes (bit-identical to the two ops).
enum class Epilogue { none, relu, relu_pool };

// The channels-last forward and backward of batch_norm_relu_max_pool2x2 once the statistics are
// known: x (N, C, H, W) channels-last, mean and rstd (C); saves the pooled output and winners only.
// x is f32, or bf16 (conv2d's bf16_output; dx is then bf16 too).
Tensor bn_relu_pool(const Tensor& input, const Tensor& weight, const Tensor& bias, const Tensor& x, const Tensor& w,
                    const Tensor& b, const Tensor& mean, const Tensor& rstd, bool training) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const bool narrow = x.dtype() == DType::bf16;
  Tensor y = empty_channels_last({N, C, H / 2, W / 2}, DType::f32);
  Tensor where = Tensor::empty({N, H / 2, W / 2, C}, DType::u8);
  if (narrow)
    kernels::cpu::batch_norm_relu_pool_forward_nhwc(x.data<bf16_t>(), mean.data<float>(), rstd.data<float>(),
                                                    data_or_null<float>(w), data_or_null<float>(b), y.data<float>(),
                                                    where.data<uint8_t>(), N, H, W, C);
  else
    kernels::cpu::batch_norm_relu_pool_forward_nhwc(x.data<float>(), mean.data<float>(), rstd.data<float>(),
                                                    data_or_null<float>(w), data_or_null<float>(b), y.data<float>(),
                                                    where.data<uint8_t>(), N, H, W, C);
  if (!autograd::needs_grad({&input, &weight, &bias})) return y;
  const bool need_x = input.requires_grad(), need_w = weight.defined() && weight.requires_grad(),
             need_b = bias.defined() && bias.requires_grad();
  const Tensor y_saved = y.detach();
  return autograd::record(y, "batch_norm_relu_max_pool2x2", {input, weight, bias},
                          [=](const Tensor& g_in) -> std::vector<Tensor> {
    Tensor g = to_channels_last(g_in);
    Tensor dx = need_x ? empty_channels_last(x.shape(), x.dtype()) : Tensor();
    Tensor dw = need_w ? Tensor::empty({C}, DType::f32) : Tensor();
    Tensor db = need_b ? Tensor::empty({C}, DType::f32) : Tensor();
    if (narrow)
      kernels::cpu::batch_norm_relu_pool_backward_nhwc(
          x.data<bf16_t>(), mean.data<float>(), rstd.data<float>(), data_or_null<float>(w), y_saved.data<float>(),
          where.data<uint8_t>(), g.data<float>(), mutable_or_null<bf16_t>(dx), mutable_or_null<float>(dw),
          mutable_or_null<float>(db), N, H, W, C, training);
    else
      kernels::cpu::batch_norm_relu_pool_backward_nhwc(
          x.data<float>(), mean.data<float>(), rstd.data<float>(), data_or_null<float>(w), y_saved.data<float>(),
          where.data<uint8_t>(), g.data<float>(), mutable_or_null<float>(dx), mutable_or_null<float>(dw),
          mutable_or_null<float>(db), N, H, W, C, training);
    return {dx, dw, db};
  });
}

// PyTorch's rule: running = (1 - momentum) * running + momentum * batch, with the unbiased batch
// variance (count values per channel) for running_var.
void update_running_stats(Tensor& running_mean, Tensor& running_var, const Tensor& mean, const Tensor& var,
                          int64_t count, double momentum) {
  if (!running_mean.defined()) return;
  if (running_stats_capture) {
    running_stats_capture({running_mean, running_var, mean.clone(), var.clone(), count, momentum});
    return;
  }
  apply_running_stats({running_mean, running_var, mean, var, count, momentum});
}


// Evaluation: the running statistics as the batch's (copies: they may change in place before this
// op's backward runs).
void use_running_stats(const Tensor& running_mean, const Tensor& running_var, Tensor& mean, Tensor& var) {
  if (!running_mean.defined())
    throw InputError("batch_norm: evaluation (training = false) needs running_mean and running_var");
  mean.copy_from(running_mean);
  var.copy_from(running_var);
}

// 1 / sqrt(var + eps), computed in double, in var's dtype.
Tensor rstd_of(const Tensor& var, double eps) {
  std::vector<double> rstd_values = var.to_vector<double>();
  for (double& r : rstd_values) r = 1.0 / std::sqrt(r + eps);
  return Tensor::from_vector(rstd_values, {var.numel()}).to(var.dtype());
}

// batch_norm_relu_max_pool2x2 on bf16 channels-last input (conv2d's bf16_output): the statistics
// over the widened values in f32, then bn_relu_pool; parameters and statistics stay f32.
Tensor bn_relu_pool_bf16(const Tensor& input, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                         Tensor running_var, bool training, double momentum, double eps) {
  const char* op = "batch_norm_relu_max_pool2x2";
  if (input.rank() != 4 || !is_channels_last(input) || input.size(2) < 2 || input.size(3) < 2 ||
      kernels::reference_mode())
    throw InputError(std::string(op) + ": bf16 input must be channels-last (N, C, H, W) with H, W >= 2 (the "
                     "bf16_output of conv2d on the fast kernels), got " + shape_str(input.shape()));
  const int64_t N = input.size(0), C = input.size(1), H = input.size(2), W = input.size(3);
  check_batch_norm_params(op, weight, bias, running_mean, running_var, C, DType::f32);
  Tensor x = input.detach();
  Tensor mean = Tensor::empty({C}, DType::f32), var = Tensor::empty({C}, DType::f32);
  if (training) {
    if (N * H * W <= 1)
      throw InputError(std::string(op) + ": training needs more than one value per channel, got input " +
                       shape_str(input.shape()));
    kernels::cpu::batch_norm_stats_nhwc(x.data<bf16_t>(), mean.data<float>(), var.data<float>(), N * H * W, C);
    update_running_stats(running_mean, running_var, mean, var, N * H * W, momentum);
  } else {
    use_running_stats(running_mean, running_var, mean, var);
  }
  return bn_relu_pool(input, weight, bias, x, contiguous_or_undefined(weight), contiguous_or_undefined(bias), mean,
                      rstd_of(var, eps), training);
}

Tensor batch_norm_impl(const Tensor& input, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                       Tensor running_var, bool training, double momentum, double eps, Epilogue epilogue) {
  const bool relu = epilogue != Epilogue::none;
  check_float_input("batch_norm", input);
  if (input.rank() != 2 && input.rank() != 4)
    throw InputError("batch_norm: input must be (N, C) or (N, C, H, W), got " + shape_str(input.shape()));
  const int64_t N = input.size(0), C = input.size(1);
  const int64_t S = input.rank() == 4 ? input.size(2) * input.size(3) : 1;
  const DType dtype = input.dtype();
  check_batch_norm_params("batch_norm", weight, bias, running_mean, running_var, C, dtype);

  // Channels-last f32 input (a convolution's NHWC output) stays channels-last: (M, C) kernels.
  const bool cl = dtype == DType::f32 && !input.is_contiguous() && is_channels_last(input) && !kernels::reference_mode();
  Tensor x = cl ? input.detach() : input.contiguous().detach();  // (N, C, S), or (N, S, C) if cl
  Tensor w = contiguous_or_undefined(weight), b = contiguous_or_undefined(bias);
  Tensor mean = Tensor::empty({C}, dtype);  // (C)
  Tensor var = Tensor::empty({C}, dtype);   // (C) biased
  if (training) {
    const int64_t count = N * S;
    if (count <= 1)
      throw InputError("batch_norm: training needs more than one value per channel, got input " +
                       shape_str(input.shape()));
    kernels::dispatch_float(
        dtype, "batch_norm",
        [&](auto tag) {
          using T = decltype(tag);
          kernels::ref::batch_norm_stats<T>(x.data<T>(), mean.data<T>(), var.data<T>(), N, C, S);
        },
        [&] {
          if (cl) kernels::cpu::batch_norm_stats_nhwc(x.data<float>(), mean.data<float>(), var.data<float>(), N * S, C);
          else kernels::cpu::batch_norm_stats(x.data<float>(), mean.data<float>(), var.data<float>(), N, C, S);
        });
    update_running_stats(running_mean, running_var, mean, var, count, momentum);
  } else {
    use_running_stats(running_mean, running_var, mean, var);
  }
  Tensor rstd = rstd_of(var, eps);  // (C)

  if (epilogue == Epilogue::relu_pool) {
    FRUGAL_CHECK(cl && input.size(2) >= 2 && input.size(3) >= 2, "batch_norm_relu_max_pool2x2 needs channels-last input");
    return bn_relu_pool(input, weight, bias, x, w, b, mean, rstd, training);
  }
  Tensor y = cl ? empty_channels_last(input.shape(), dtype) : Tensor::empty(input.shape(), dtype);
  kernels::dispatch_float(
      dtype, "batch_norm",
      [&](auto tag) {
        using T = decltype(tag);
        kernels::ref::batch_norm_forward<T>(x.data<T>(), mean.data<T>(), rstd.data<T>(), data_or_null<T>(w),
                                            data_or_null<T>(b), y.data<T>(), N, C, S);
        if (relu) kernels::ref::activation_forward<T>(kernels::ActivationOp::relu, y.data<T>(), y.data<T>(), y.numel());
      },
      [&] {
        if (cl)
          kernels::cpu::batch_norm_forward_nhwc(x.data<float>(), mean.data<float>(), rstd.data<float>(),
                                                data_or_null<float>(w), data_or_null<float>(b), y.data<float>(), N * S,
                                                C, relu);
        else
          kernels::cpu::batch_norm_forward(x.data<float>(), mean.data<float>(), rstd.data<float>(),
                                           data_or_null<float>(w), data_or_null<float>(b), y.data<float>(), N, C, S,
                                           relu);
      });
  if (!autograd::needs_grad({&input, &weight, &bias})) return y;
  const bool need_x = input.requires_grad(), need_w = weight.defined() && weight.requires_grad(),
             need_b = bias.defined() && bias.requires_grad();
  const Tensor relu_out = relu ? y.detach() : Tensor();
  return autograd::record(y, relu ? "batch_norm_relu" : "batch_norm", {input, weight, bias},
                          [=](const Tensor& g_in) -> std::vector<Tensor> {
    Tensor g = cl ? to_channels_last(g_in) : g_in.contiguous();
    Tensor dx = !need_x ? Tensor() : cl ? empty_channels_last(x.shape(), dtype) : Tensor::empty(x.shape(), dtype);
    Tensor dw = need_w ? Tensor::empty({C}, dtype) : Tensor();
    Tensor db = need_b ? Tensor::empty({C}, dtype) : Tensor();
    kernels::dispatch_float(
        dtype, "batch_norm backward",
        [&](auto tag) {
          using T = decltype(tag);
          Tensor g_bn = g;
          if (relu) {
            g_bn = Tensor::empty(g.shape(), dtype);
            kernels::ref::activation_backward<T>(kernels::ActivationOp::relu, relu_out.data<T>(), g.data<T>(),
                                                 g_bn.data<T>(), g.numel());
          }
          kernels::ref::batch_norm_backward<T>(x.data<T>(), mean.data<T>(), rstd.data<T>(), data_or_null<T>(w),
                                               g_bn.data<T>(), mutable_or_null<T>(dx), mutable_or_null<T>(dw),
                                               mutable_or_null<T>(db), N, C, S, training);
        },
        [&] {
          const float* relu_p = relu ? relu_out.data<float>() : nullptr;
          if (cl)
            kernels::cpu::batch_norm_backward_nhwc(x.data<float>(), mean.data<float>(), rstd.data<float>(),
                                                   data_or_null<float>(w), g.data<float>(), mutable_or_null<float>(dx),
                                                   mutable_or_null<float>(dw), mutable_or_null<float>(db), N * S, C,
                                                   training, relu_p);
          else
            kernels::cpu::batch_norm_backward(x.data<float>(), mean.data<float>(), rstd.data<float>(),
                                              data_or_null<float>(w), g.data<float>(), mutable_or_null<float>(dx),
                                              mutable_or_null<float>(dw), mutable_or_null<float>(db), N, C, S,
                                              training, relu_p);
        });
    return {dx, dw, db};
  });
}
}  // namespace

Tensor batch_norm(const Tensor& input, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                  Tensor running_var, bool training, double momentum, double eps) {
  return batch_norm_impl(input, weight, bias, running_mean, running_var, training, momentum, eps, Epilogue::none);
}

Tensor batch_norm_relu(const Tensor& input, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                       Tensor running_var, bool training, double momentum, double eps) {
  return batch_norm_impl(input, weight, bias, running_mean, running_var, training, momentum, eps, Epilogue::relu);
}

Tensor batch_norm_relu_max_pool2x2(const Tensor& input, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                                   Tensor running_var, bool training, double momentum, double eps) {
  if (input.dtype() == DType::bf16)
    return bn_relu_pool_bf16(input, weight, bias, running_mean, running_var, training, momentum, eps);
  const bool fused = input.dtype() == DType::f32 && input.rank() == 4 && !input.is_contiguous() &&
                     is_channels_last(input) && !kernels::reference_mode() && input.size(2) >= 2 && input.size(3) >= 2;
  if (!fused)
    return max_pool2d(batch_norm_relu(input, weight, bias, running_mean, running_var, training, momentum, eps),
                      Pool2dOptions{});
  return batch_norm_impl(input, weight, bias, running_mean, running_var, training, momentum, eps, Epilogue::relu_pool);
}

// ---- a first block: conv2d, batch norm, ReLU, 2x2 max pooling ----

namespace {
kernels::cpu::StemDims stem_dims(const Tensor& x, const Tensor& conv_weight) {
  kernels::cpu::StemDims d;
  d.n = x.size(0), d.c = x.size(1), d.h = x.size(2), d.w = x.size(3);
  d.o = conv_weight.size(0), d.k = conv_weight.size(2);
  return d;
}

// FLOPs of the block's convolution as a direct one computes it (output h x w, stride 1), for the
// forward or the weight gradient; the kernels compute both with fewer multiply-adds.
double stem_conv_flops(const kernels::cpu::StemDims& d) {
  return 2.0 * double(d.n) * double(d.o) * double(d.h) * double(d.w) * double(d.c) * double(d.k) * double(d.k);
}

// An f32 operand of the convolution (its memory read as one flat array) as the compute precision
// has conv2d read it: the same values in fp32, rounded to bf16 or f16 values otherwise.
Tensor as_computed(const Tensor& t, const Tensor& like) {
  const Precision precision = compute_precision();
  if (precision == Precision::fp32) return t;
  Tensor out = like;
  if (bf16_operands(precision)) kernels::cpu::round_to_bf16_values(t.data<float>(), out.data<float>(), t.numel());
  else kernels::cpu::round_to_f16(t.data<float>(), out.data<float>(), t.numel());
  return out;
}
}  // namespace

bool conv2d_batch_norm_relu_max_pool2x2_supported(const Tensor& x, const Tensor& conv_weight,
                                                  const Conv2dOptions& conv) {
  if (kernels::reference_mode() || autograd::needs_grad({&x}) || x.dtype() != DType::f32 ||
      conv_weight.dtype() != DType::f32 || x.rank() != 4 || conv_weight.rank() != 4 || !is_channels_last(x))
    return false;
  const int64_t k = conv_weight.size(2);
  if (conv_weight.size(1) != x.size(1) || conv_weight.size(3) != k) return false;
  if (conv.stride_h != 1 || conv.stride_w != 1 || conv.dilation_h != 1 || conv.dilation_w != 1 || conv.groups != 1 ||
      conv.padding_h != k / 2 || conv.padding_w != k / 2)
    return false;
  return conv2d_batch_norm_relu_max_pool2x2_runs(x.shape(), conv_weight.size(0), k);
}

bool conv2d_batch_norm_relu_max_pool2x2_runs(const Shape& x, int64_t out_channels, int64_t kernel) {
  if (kernels::reference_mode() || x.size() != 4) return false;
  kernels::cpu::StemDims d;
  d.n = x[0], d.c = x[1], d.h = x[2], d.w = x[3], d.o = out_channels, d.k = kernel;
  return kernels::cpu::stem_supported(d);
}

Tensor conv2d_batch_norm_relu_max_pool2x2(const Tensor& x, const Tensor& conv_weight, const Tensor& conv_bias,
                                          const Conv2dOptions& conv, const Tensor& weight, const Tensor& bias,
                                          Tensor running_mean, Tensor running_var, bool training, double momentum,
                                          double eps) {
  const char* op = "conv2d_batch_norm_relu_max_pool2x2";
  if (!conv2d_batch_norm_relu_max_pool2x2_supported(x, conv_weight, conv))
    throw InputError(std::string(op) + ": input " + shape_str(x.shape()) + " and weight " +
                     shape_str(conv_weight.shape()) + " are not a case it runs (see ops.h); use conv2d and " +
                     "batch_norm_relu_max_pool2x2");
  const kernels::cpu::StemDims d = stem_dims(x, conv_weight);
  check_channel_param(op, "conv bias", conv_bias, d.o, DType::f32);
  check_batch_norm_params(op, weight, bias, running_mean, running_var, d.o, DType::f32);
  const Tensor xl = to_channels_last(x).detach(), wl = conv_weight.contiguous().detach();
  const Tensor xv = as_computed(xl, empty_channels_last(xl.shape())), wv = as_computed(wl, Tensor::empty(wl.shape()));
  const Tensor cb = contiguous_or_undefined(conv_bias), w = contiguous_or_undefined(weight),
               b = contiguous_or_undefined(bias);
  // Evaluation without gradients reads only the moments' shift.
  const bool grads = autograd::needs_grad({&conv_weight, &conv_bias, &weight, &bias});
  Tensor moments = Tensor::empty({kernels::cpu::stem_moments_size(d)}, DType::f64);
  kernels::cpu::stem_moments(xv.data<float>(), moments.data<double>(), d, training || grads);
  Tensor mean = Tensor::empty({d.o}, DType::f32), var = Tensor::empty({d.o}, DType::f32);
  if (training) {
    kernels::cpu::stem_stats(moments.data<double>(), wv.data<float>(), data_or_null<float>(cb), mean.data<float>(),
                             var.data<float>(), d);
    update_running_stats(running_mean, running_var, mean, var, d.n * d.h * d.w, momentum);
  } else {
    use_running_stats(running_mean, running_var, mean, var);
  }
  const Tensor rstd = rstd_of(var, eps);
  Tensor y = empty_channels_last({d.n, d.o, d.h / 2, d.w / 2}, DType::f32);
  Tensor where = Tensor::empty({d.n, d.h / 2, d.w / 2, d.o}, DType::u8);
  kernels::cpu::stem_forward(xv.data<float>(), moments.data<double>(), wv.data<float>(), data_or_null<float>(cb),
                             mean.data<float>(), rstd.data<float>(), data_or_null<float>(w), data_or_null<float>(b), y.data<float>(),
                             where.data<uint8_t>(), d);
  autograd::count_flops(stem_conv_flops(d));
  if (!grads) return y;
  const bool need_cw = conv_weight.requires_grad(), need_cb = conv_bias.defined() && conv_bias.requires_grad();
  const bool need_w = weight.defined() && weight.requires_grad(), need_b = bias.defined() && bias.requires_grad();
  const Tensor y_saved = y.detach();
  return autograd::record(y, op, {x, conv_weight, conv_bias, weight, bias}, [=](const Tensor& g_in) -> std::vector<Tensor> {
    FRUGAL_CHECK(g_in.dtype() == DType::f32, "conv2d_batch_norm_relu_max_pool2x2 backward expects an f32 gradient");
    const Tensor g = to_channels_last(g_in);
    Tensor dcw = need_cw ? Tensor::empty(wl.shape(), DType::f32) : Tensor();
    Tensor dcb = need_cb ? Tensor::empty({d.o}, DType::f32) : Tensor();
    Tensor dw = need_w ? Tensor::empty({d.o}, DType::f32) : Tensor();
    Tensor db = need_b ? Tensor::empty({d.o}, DType::f32) : Tensor();
    kernels::cpu::stem_backward(xv.data<float>(), moments.data<double>(), wv.data<float>(), data_or_null<float>(cb),
                                mean.data<float>(), rstd.data<float>(), data_or_null<float>(w), y_saved.data<float>(),
                                where.data<uint8_t>(), g.data<float>(), mutable_or_null<float>(dcw),
                                mutable_or_null<float>(dcb), mutable_or_null<float>(dw), mutable_or_null<float>(db), d,
                                training);
    if (need_cw) autograd::count_flops(stem_conv_flops(d));
    return {Tensor(), dcw, dcb, dw, db};
  });
}

// ---- attention ----

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal) {
  check_float_input("scaled_dot_product_attention", q);
  for (const Tensor* t : {&q, &k, &v})
    if (t->rank() != 4)
      throw InputError("scaled_dot_product_attention: q, k, v must be (B, H, T, D), got " + shape_str(t->shape()));
  if (k.dtype() != q.dtype() || v.dtype() != q.dtype())
    throw InputError("scaled_dot_product_attention: q, k, v dtypes differ (" + dtype_str(q.dtype()) + ", " +
                     dtype_str(k.dtype()) + ", " + dtype_str(v.dtype()) + ")");
  const int64_t B = q.size(0), H = q.size(1), Tq = q.size(2), D = q.size(3), Tk = k.size(2);
  if (k.size(0) != B || k.size(1) != H || k.size(3) != D || v.shape() != k.shape())
    throw InputError("scaled_dot_product_attention: k " + shape_str(k.shape()) + " and v " + shape_str(v.shape()) +
                     " must be (B, H, Tk, D) matching q " + shape_str(q.shape()));
  if (D < 1 || (Tq > 0 && Tk < 1))
    throw InputError("scaled_dot_product_attention: need D >= 1 and at least one key, got q " +
                     shape_str(q.shape()) + " and k " + shape_str(k.shape()));
  const int64_t BH = B * H;
  Tensor qc = q.contiguous().detach(), kc = k.contiguous().detach(), vc = v.contiguous().detach();
  Tensor out = Tensor::empty({B, H, Tq, D}, q.dtype());  // (B, H, Tq, D)
  Tensor lse = Tensor::empty({B, H, Tq}, q.dtype());     // (B, H, Tq)
  kernels::dispatch_float(
      q.dtype(), "scaled_dot_product_attention",
      [&](auto tag) {
        using T = decltype(tag);
        kernels::ref::attention_forward<T>(qc.data<T>(), kc.data<T>(), vc.data<T>(), out.data<T>(), lse.data<T>(), BH,
                                           Tq, Tk, D, causal);
      },
      [&] {
        kernels::cpu::attention_forward(qc.data<float>(), kc.data<float>(), vc.data<float>(), out.data<float>(),
                                        lse.data<float>(), BH, Tq, Tk, D, causal);
      });
  // Scores Q K^T and the value product P V over the full Tq x Tk matrix (flops.h: also when causal).
  const double product = 2.0 * double(BH) * double(Tq) * double(Tk) * double(D);
  autograd::count_flops(2 * product);
  if (!autograd::needs_grad({&q, &k, &v})) return out;
  Tensor out_saved = out.detach();
  return autograd::record(
      out, "scaled_dot_product_attention", {q, k, v}, [=](const Tensor& g_in) -> std::vector<Tensor> {
        Tensor g = g_in.contiguous();
        Tensor dq = Tensor::empty(qc.shape(), qc.dtype());  // (B, H, Tq, D)
        Tensor dk = Tensor::empty(kc.shape(), qc.dtype());  // (B, H, Tk, D)
        Tensor dv = Tensor::empty(vc.shape(), qc.dtype());  // (B, H, Tk, D)
        kernels::dispatch_float(
            qc.dtype(), "scaled_dot_product_attention backward",
            [&](auto tag) {
              using T = decltype(tag);
              kernels::ref::attention_backward<T>(qc.data<T>(), kc.data<T>(), vc.data<T>(), out_saved.data<T>(),
                                                  lse.data<T>(), g.data<T>(), dq.data<T>(), dk.data<T>(),
                                                  dv.data<T>(), BH, Tq, Tk, D, causal);
            },
            [&] {
              kernels::cpu::attention_backward(qc.data<float>(), kc.data<float>(), vc.data<float>(),
                                               out_saved.data<float>(), lse.data<float>(), g.data<float>(),
                                               dq.data<float>(), dk.data<float>(), dv.data<float>(), BH, Tq, Tk, D,
                                               causal);
            });
        autograd::count_flops(4 * product);  // dV = P^T dO, dP = dO V^T, dQ = dS K, dK = dS^T Q
        return {dq, dk, dv};
      });
}

}  // namespace frugal
