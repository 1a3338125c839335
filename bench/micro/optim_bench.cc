// One optimizer step (AdamW, SGD with momentum) and one global-norm clip over the parameters of
// the example MLP (784-256-128-10) and GPT (4 layers, width 128, context 128), on 1 and 2 threads.
// Run with GOMP_SPINCOUNT=30000 (what `frugal` sets; OMP_WAIT_POLICY=passive to see the cost of waking the pool).
#include <benchmark/benchmark.h>

#include <memory>

#include "frugal/base/parallel.h"
#include "frugal/nn/nn.h"
#include "frugal/optim/optim.h"

namespace {
using namespace frugal;

std::shared_ptr<nn::Module> make_model(int64_t which) {
  if (which == 0) return nn::make_mlp({784, {256, 128}, 10, "relu"}, 1);
  nn::GptConfig gpt;
  gpt.vocab = 80, gpt.context = 128, gpt.layers = 4, gpt.heads = 4, gpt.width = 128;
  return nn::make_gpt(gpt, 1);
}

// Gives every parameter a gradient of small values (fresh buffers, as a backward pass would).
void set_grads(nn::Module& model) {
  for (Tensor& p : model.parameters()) p.set_grad(Tensor::full(p.shape(), 1e-3));
}

void label(benchmark::State& state, const nn::Module& model) {
  state.SetLabel(std::string(state.range(0) == 0 ? "mlp " : "gpt ") + std::to_string(model.num_parameters()) +
                 " params, " + std::to_string(state.range(1)) + " threads");
}

void BM_adamw_step(benchmark::State& state) {
  set_num_threads(int(state.range(1)));
  auto model = make_model(state.range(0));
  optim::AdamW adamw(optim::default_param_groups(*model, 0.01), optim::AdamWOptions{});
  set_grads(*model);
  adamw.step();  // state buffers allocated here, outside the timing
  for (auto _ : state) adamw.step();
  label(state, *model);
}

void BM_sgd_momentum_step(benchmark::State& state) {
  set_num_threads(int(state.range(1)));
  auto model = make_model(state.range(0));
  optim::SGD sgd(optim::default_param_groups(*model, 0.01), optim::SgdOptions{0.01, 0.9});
  set_grads(*model);
  sgd.step();
  for (auto _ : state) sgd.step();
  label(state, *model);
}

void BM_clip_grad_norm(benchmark::State& state) {
  set_num_threads(int(state.range(1)));
  auto model = make_model(state.range(0));
  std::vector<Tensor> params = model->parameters();
  set_grads(*model);
  // max_norm below the norm: every call also scales (by a factor close to 1, so values stay sane).
  const double norm = optim::clip_grad_norm(params, 1e30);
  for (auto _ : state) benchmark::DoNotOptimize(optim::clip_grad_norm(params, norm * 0.999999));
  label(state, *model);
}

void shapes(benchmark::internal::Benchmark* b) {
  for (int64_t model : {0, 1})
    for (int64_t threads : {1, 2}) b->Args({model, threads});
  b->Unit(benchmark::kMicrosecond);
}

BENCHMARK(BM_adamw_step)->Apply(shapes);
BENCHMARK(BM_sgd_momentum_step)->Apply(shapes);
BENCHMARK(BM_clip_grad_norm)->Apply(shapes);

}  // namespace

BENCHMARK_MAIN();
