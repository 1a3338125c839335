// Placeholder until the real example (a custom technique trained through the loop) lands: proves
// that libfrugal's installed headers and libraries build and link, by training a small MLP with
// AdamW for 20 steps on a fixed random batch and printing the losses.
#include <cstdio>
#include <vector>

#include "frugal/autograd/autograd.h"
#include "frugal/autograd/ops.h"
#include "frugal/base/rng.h"
#include "frugal/nn/nn.h"
#include "frugal/optim/optim.h"

using namespace frugal;

int main() {
  const int64_t N = 64, inputs = 8;  // batch, features; label = (x0 + x1 > 0)
  Rng rng(/*seed=*/1, /*stream=*/0);
  std::vector<float> x(N * inputs);
  std::vector<int64_t> y(N);
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t i = 0; i < inputs; ++i) x[n * inputs + i] = rng.normal();
    y[n] = x[n * inputs] + x[n * inputs + 1] > 0;
  }
  Tensor xs = Tensor::from_vector(x, {N, inputs});  // (N, inputs)
  Tensor ys = Tensor::from_vector(y, {N});          // (N) i64

  auto model = nn::make_mlp({inputs, {32}, 2, "relu"}, /*seed=*/1);
  optim::AdamW optimizer(model->parameters(), optim::AdamWOptions{.lr = 1e-2});
  double first = 0, last = 0;
  for (int step = 0; step < 20; ++step) {
    Tensor loss = cross_entropy((*model)(xs), ys);
    autograd::backward(loss);
    optimizer.step();
    optimizer.zero_grad();
    last = loss.item();
    if (step == 0) first = last;
    std::printf("step %2d loss %.4f\n", step, last);
  }
  if (!(last < first)) {
    std::fprintf(stderr, "train_with_ema: the loss did not decrease (%.4f -> %.4f)\n", first, last);
    return 1;
  }
  return 0;
}
