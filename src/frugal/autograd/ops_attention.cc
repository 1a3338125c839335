// multi_head_attention: the transformer's attention straight from the fused qkv projection. Short
// contexts: per-head operands packed once (bf16 under bf16-mixed), probabilities materialized and
// kept for backward, batched oneDNN matmuls (two forward, four backward). Long contexts, f64 and
// reference mode: heads split by views into the tiled kernel. Each batched matmul counts its FLOPs
// (flops.h), which add up to what scaled_dot_product_attention counts on the tiled path.
#include <cmath>
#include <string>

#include "frugal/autograd/flops.h"
#include "frugal/autograd/ops.h"
#include "frugal/autograd/precision.h"
#include "frugal/kernels/cpu/attention.h"
#include "frugal/kernels/cpu/dense.h"
#include "frugal/kernels/kernels.h"

namespace frugal {

namespace {
using kernels::MatmulDims;

// Scores of at most this many bytes are materialized (per call: all batches and heads).
constexpr int64_t kMaxScoreBytes = int64_t(64) << 20;

// c (batch, m, n) f32 = a (batch, m, k) x b (batch, k, n), every operand contiguous per batch
// entry; transpose_a / transpose_b read a as (batch, k, m) / b as (batch, n, k).
void batched_matmul(const Tensor& a, const Tensor& b, float* c, int64_t batch, int64_t m, int64_t n, int64_t k,
                    bool transpose_a, bool transpose_b) {
  MatmulDims d;
  d.batch = batch, d.m = m, d.n = n, d.k = k;
  d.transpose_a = transpose_a, d.transpose_b = transpose_b;
  d.lda = transpose_a ? m : k;
  d.ldb = transpose_b ? k : n;
  d.ldc = n;
  d.batch_stride_a = m * k, d.batch_stride_b = k * n, d.batch_stride_c = m * n;
  if (a.dtype() == DType::bf16) kernels::cpu::matmul_bf16(a.data<bf16_t>(), b.data<bf16_t>(), nullptr, c, d);
  else kernels::cpu::matmul(a.data<float>(), b.data<float>(), nullptr, c, d);
  autograd::count_flops(2.0 * double(batch) * double(m) * double(n) * double(k));
}

// Columns [offset, offset + H*D) of x's (B, T, width) rows as (B*H, T, D) in `type`.
Tensor split(const Tensor& x, int64_t width, int64_t offset, int64_t B, int64_t T, int64_t H, int64_t D, DType type) {
  Tensor out = Tensor::empty({B * H, T, D}, type);
  if (type == DType::bf16)
    kernels::cpu::split_heads(x.data<float>(), width, offset, out.data<bf16_t>(), B, T, H, D);
  else
    kernels::cpu::split_heads(x.data<float>(), width, offset, out.data<float>(), B, T, H, D);
  return out;
}

// The tiled path: heads as (B, H, T, D) views of the qkv columns, merged back by a transpose.
Tensor attention_through_views(const Tensor& qkv, int64_t heads, bool causal) {
  const int64_t B = qkv.size(0), T = qkv.size(1), C = qkv.size(2) / 3, H = heads, D = C / H;
  auto head_view = [&](int64_t part) {  // (B, T, C) slice -> (B, H, T, D)
    return transpose(reshape(slice(qkv, 2, part * C, (part + 1) * C), {B, T, H, D}), 1, 2);
  };
  Tensor y = scaled_dot_product_attention(head_view(0), head_view(1), head_view(2), causal);  // (B, H, T, D)
  return reshape(transpose(y, 1, 2), {B, T, C});
}
}  // namespace

Tensor multi_head_attention(const Tensor& qkv, int64_t heads, bool causal) {
  if (qkv.rank() != 3 || qkv.size(2) % 3 != 0)
    throw InputError("multi_head_attention: qkv must be (B, T, 3C), got " + shape_str(qkv.shape()));
  if (qkv.dtype() != DType::f32 && qkv.dtype() != DType::f64)
    throw InputError("multi_head_attention: expected a f32 or f64 tensor, got " + std::string(dtype_name(qkv.dtype())));
  const int64_t B = qkv.size(0), T = qkv.size(1), C = qkv.size(2) / 3;
  if (heads < 1 || C % heads != 0 || C == 0)
    throw InputError("multi_head_attention: width " + std::to_string(C) + " must be a positive multiple of heads = " +
                     std::to_string(heads));
  const int64_t H = heads, D = C / H, BH = B * H;
  if (B == 0 || T == 0) return attention_through_views(qkv, heads, causal);
  const bool materialize = qkv.dtype() == DType::f32 && !kernels::reference_mode() &&
                           BH * T * T * int64_t(sizeof(float)) <= kMaxScoreBytes;
  if (!materialize) return attention_through_views(qkv, heads, causal);

  // Matmul operands in the compute type: bf16 under bf16-mixed (captured: backward uses the
  // forward's precision), f32 otherwise (fp16-mixed included: the attention matmuls stay f32).
  const DType type = bf16_operands(compute_precision()) ? DType::bf16 : DType::f32;
  const float scale = float(1.0 / std::sqrt(double(D)));
  Tensor x = qkv.contiguous().detach();                 // (B, T, 3C)
  Tensor q = split(x, 3 * C, 0, B, T, H, D, type);       // (BH, T, D)
  Tensor k = split(x, 3 * C, C, B, T, H, D, type);       // (BH, T, D)
  Tensor v = split(x, 3 * C, 2 * C, B, T, H, D, type);   // (BH, T, D)
  Tensor probs = Tensor::empty({BH, T, T}, DType::f32);  // (BH, T, T) scores, then probabilities
  batched_matmul(q, k, probs.data<float>(), BH, T, T, D, false, true);
  // The matmul operand: probs itself, or its bf16 rounding written by the softmax pass (kept for
  // backward, as autocast keeps the bf16 copy it made for the matmul).
  Tensor probs_operand = type == DType::f32 ? probs : Tensor::empty({BH, T, T}, DType::bf16);
  kernels::cpu::softmax_rows(probs.data<float>(), BH, T, T, scale, causal,
                             type == DType::f32 ? nullptr : probs_operand.data<bf16_t>());
  Tensor heads_out = Tensor::empty({BH, T, D}, DType::f32);  // (BH, T, D)
  batched_matmul(probs_operand, v, heads_out.data<float>(), BH, T, D, T, false, false);
  Tensor out = Tensor::empty({B, T, C}, DType::f32);  // (B, T, C)
  kernels::cpu::merge_heads(heads_out.data<float>(), out.data<float>(), C, 0, B, T, H, D);
  if (!autograd::needs_grad({&qkv})) return out;
  heads_out = Tensor();
  return autograd::record(out, "multi_head_attention", {qkv}, [=](const Tensor& g_in) -> std::vector<Tensor> {
    Tensor g = g_in.contiguous();                             // (B, T, C)
    Tensor d_out = split(g, C, 0, B, T, H, D, type);          // (BH, T, D)
    Tensor d_qkv = Tensor::empty({B, T, 3 * C}, DType::f32);  // (B, T, 3C)
    Tensor part = Tensor::empty({BH, T, D}, DType::f32);      // (BH, T, D) one gradient at a time
    // dV = P^T dO
    batched_matmul(probs_operand, d_out, part.data<float>(), BH, T, D, T, true, false);
    kernels::cpu::merge_heads(part.data<float>(), d_qkv.data<float>(), 3 * C, 2 * C, B, T, H, D);
    // dP = dO V^T, then dS = scale * P * (dP - rowsum(P * dP)) in place
    Tensor d_scores = Tensor::empty({BH, T, T}, DType::f32);  // (BH, T, T)
    batched_matmul(d_out, v, d_scores.data<float>(), BH, T, T, D, false, true);
    Tensor ds = type == DType::f32 ? d_scores : Tensor::empty({BH, T, T}, DType::bf16);  // (BH, T, T)
    kernels::cpu::softmax_rows_backward(probs.data<float>(), d_scores.data<float>(), BH * T, T, scale,
                                        type == DType::f32 ? nullptr : ds.data<bf16_t>());
    // dQ = dS K, dK = dS^T Q
    batched_matmul(ds, k, part.data<float>(), BH, T, D, T, false, false);
    kernels::cpu::merge_heads(part.data<float>(), d_qkv.data<float>(), 3 * C, 0, B, T, H, D);
    batched_matmul(ds, q, part.data<float>(), BH, T, D, T, true, false);
    kernels::cpu::merge_heads(part.data<float>(), d_qkv.data<float>(), 3 * C, C, B, T, H, D);
    return {d_qkv};
  });
}

}  // namespace frugal
