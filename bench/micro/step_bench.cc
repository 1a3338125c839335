// One training step (forward, backward, AdamW) of the three example models at their example
// batch sizes, fp32 and bf16-mixed, with counted model FLOPs per second; plus the memory-bound
// pieces around the dense ops (bf16 conversion, attention softmax, GELU) on the GPT's sizes.
// Run: OMP_NUM_THREADS=2 GOMP_SPINCOUNT=30000 build/bench/step_bench (on a quiet machine; what `frugal` sets).
#include <benchmark/benchmark.h>

#include "frugal/autograd/autograd.h"
#include "frugal/autograd/ops.h"
#include "frugal/autograd/precision.h"
#include "frugal/kernels/cpu/attention.h"
#include "frugal/kernels/cpu/convert.h"
#include "frugal/nn/zoo.h"
#include "frugal/optim/optimizer.h"
#include "frugal/tensor/tensor.h"

namespace frugal {
namespace {

Tensor filled(const Shape& shape) {
  Tensor t = Tensor::empty(shape, DType::f32);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = float((i * 7919) % 1001) / 1001.0f - 0.5f;
  return t;
}

Tensor labels(int64_t n, int64_t classes) {
  Tensor t = Tensor::empty({n}, DType::i64);
  for (int64_t i = 0; i < n; ++i) t.data<int64_t>()[i] = (i * 31) % classes;
  return t;
}

// Steps `model` on (x, y) until the benchmark is done; FLOPs = 3 x forward FLOPs per sample.
void run_steps(benchmark::State& state, nn::Module& model, const Tensor& x, const Tensor& y, int64_t samples,
               int64_t flops_per_sample, bool bf16) {
  PrecisionGuard precision(bf16 ? Precision::bf16_mixed : Precision::fp32);
  optim::AdamW optimizer(optim::default_param_groups(model, 0.01), optim::AdamWOptions{});
  auto step = [&] {
    Tensor logits = model(x);
    if (logits.rank() == 3) logits = reshape(logits, {-1, logits.size(-1)});
    autograd::backward(cross_entropy(logits, y));
    optimizer.step();
    optimizer.zero_grad();
  };
  step();  // warm-up: primitives, allocator cache
  for (auto _ : state) step();
  state.counters["GFLOP/s"] = benchmark::Counter(double(3 * flops_per_sample * samples) * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

void BM_GptStep(benchmark::State& state) {
  nn::GptConfig config;  // examples/kjv-gpt.toml; vocabulary of the KJV text
  config.vocab = 63, config.context = 128, config.layers = 4, config.heads = 4, config.width = 128;
  if (state.range(1)) config.recompute_blocks = {0, 1, 2, 3};  // [memory] recompute = "blocks"
  auto model = nn::make_gpt(config, 1);
  const int64_t B = 32, T = config.context;
  Tensor ids = Tensor::empty({B, T}, DType::i64);
  for (int64_t i = 0; i < B * T; ++i) ids.data<int64_t>()[i] = (i * 17) % config.vocab;
  state.counters["tok/s"] = benchmark::Counter(double(B * T), benchmark::Counter::kIsIterationInvariantRate);
  run_steps(state, *model, ids, labels(B * T, config.vocab), B, nn::count_flops_per_sample(config), state.range(0));
}
BENCHMARK(BM_GptStep)
    ->ArgsProduct({{0, 1}, {0, 1}})
    ->ArgNames({"bf16", "recompute"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_MlpStep(benchmark::State& state) {
  nn::MlpConfig config;  // examples/fashion-mnist-mlp.toml
  config.inputs = 784, config.hidden = {256, 128}, config.outputs = 10, config.dropout = 0.1;
  auto model = nn::make_mlp(config, 1);
  const int64_t B = 128;
  run_steps(state, *model, filled({B, 784}), labels(B, 10), B, nn::count_flops_per_sample(config), state.range(0));
}
BENCHMARK(BM_MlpStep)->Arg(0)->Arg(1)->ArgName("bf16")->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_CnnStep(benchmark::State& state) {
  nn::CnnConfig config;  // examples/fashion-mnist-cnn.toml
  config.channels = {32, 64}, config.hidden = {128}, config.outputs = 10, config.dropout = 0.25;
  auto model = nn::make_cnn(config, 1);
  const int64_t B = 128;
  run_steps(state, *model, filled({B, 1, 28, 28}), labels(B, 10), B, nn::count_flops_per_sample(config),
            state.range(0));
}
BENCHMARK(BM_CnnStep)->Arg(0)->Arg(1)->ArgName("bf16")->Unit(benchmark::kMillisecond)->UseRealTime();

// ---- the memory-bound pieces, GPT sizes: B*H = 128 heads of 128 x 128 scores, (4096, 512) MLP ----

void BM_ConvertBf16(benchmark::State& state) {
  Tensor x = filled({128 * 128 * 128});
  Tensor y = Tensor::empty({x.numel()}, DType::bf16);
  for (auto _ : state) kernels::cpu::f32_to_bf16(x.data<float>(), y.data<bf16_t>(), x.numel());
  state.SetBytesProcessed(state.iterations() * x.numel() * 6);
}
BENCHMARK(BM_ConvertBf16)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_AttentionSoftmax(benchmark::State& state) {
  Tensor s = filled({128, 128, 128});
  for (auto _ : state) kernels::cpu::softmax_rows(s.data<float>(), 128, 128, 128, 0.17f, true);
  state.SetBytesProcessed(state.iterations() * s.numel() * 8);
}
BENCHMARK(BM_AttentionSoftmax)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_GeluForwardBackward(benchmark::State& state) {
  Tensor x = filled({4096, 512});
  x.set_requires_grad(true);
  for (auto _ : state) {
    Tensor y = gelu(x, GeluApproximation::tanh);
    autograd::backward(sum(y));
    x.set_grad(Tensor());
  }
  state.SetItemsProcessed(state.iterations() * x.numel());
}
BENCHMARK(BM_GeluForwardBackward)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace
}  // namespace frugal

BENCHMARK_MAIN();
