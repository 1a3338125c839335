// End-to-end golden test, llm.c style: frugal's zoo MLP (SGD with momentum) and GPT (AdamW, warmup +
// cosine, global grad-norm clipping) train 10 steps from PyTorch's initial weights on PyTorch's
// batches (tests/golden/data/train_*.safetensors, made by make_train_golden.py in f64) and must
// reproduce PyTorch's loss at every step to 1e-5 relative. Limits: f32, dropout off, one process.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "frugal/autograd/autograd.h"
#include "frugal/autograd/ops.h"
#include "frugal/io/safetensors.h"
#include "frugal/nn/zoo.h"
#include "frugal/optim/optimizer.h"
#include "frugal/optim/schedule.h"
#include "golden_util.h"

namespace frugal {
namespace {
using golden::Options;

// The brief asks for 1e-4; frugal's f32 run agrees with PyTorch's f64 run to <= 1e-7 here, and 1e-4
// would not notice a missing SGD weight decay (1e-4 changes the MLP losses by only 6e-5 relative).
constexpr double kLossRtol = 1e-5;

struct GoldenRun {
  io::SafetensorsFile file;
  std::map<std::string, Tensor> initial;  // state-dict name -> tensor ("init." stripped)
  Options config;

  explicit GoldenRun(const std::string& name)
      : file(io::read_safetensors(std::string(FRUGAL_SOURCE_DIR) + "/tests/golden/data/" + name + ".safetensors")),
        config(file.metadata.at("config")) {
    for (const auto& [key, tensor] : file.tensors)
      if (key.rfind("init.", 0) == 0) initial[key.substr(5)] = tensor;
  }
  const Tensor& tensor(const std::string& key) const {
    auto it = file.tensors.find(key);
    FRUGAL_CHECK(it != file.tensors.end(), "golden file has no tensor " + key);
    return it->second;
  }
};

// Compares two series elementwise to `rtol` relative, printing both (llm.c prints its losses so).
void expect_series(const char* what, const std::vector<double>& got, const Tensor& expected, double rtol) {
  std::vector<double> ref = expected.to_vector<double>();
  ASSERT_EQ(got.size(), ref.size()) << what;
  std::printf("  %-10s %5s %14s %14s %10s\n", what, "step", "frugal", "pytorch", "rel diff");
  for (size_t i = 0; i < ref.size(); ++i) {
    double rel = std::fabs(got[i] - ref[i]) / std::fabs(ref[i]);
    std::printf("  %-10s %5zu %14.8f %14.8f %10.2e%s\n", what, i, got[i], ref[i], rel, rel <= rtol ? "" : "  <-- FAIL");
    EXPECT_LE(rel, rtol) << what << " at step " << i << ": frugal " << got[i] << ", PyTorch " << ref[i];
  }
}

TEST(TrainGolden, MlpSgdMomentumMatchesPyTorch) {
  GoldenRun run("train_mlp");
  const Options& c = run.config;
  nn::MlpConfig config;
  config.inputs = c.i("inputs");
  config.hidden = c.ints("hidden");
  config.outputs = c.i("outputs");
  auto model = nn::make_mlp(config, 0);
  model->load_state_dict(run.initial, /*strict=*/true);

  optim::SgdOptions options;
  options.lr = c.f("lr");
  options.momentum = c.f("momentum");
  options.dampening = c.f("dampening");
  options.weight_decay = c.f("weight_decay");  // on every parameter, as torch.optim.SGD(model.parameters())
  optim::SGD optimizer(model->parameters(), options);

  const Tensor& xs = run.tensor("x");  // (steps, B, inputs)
  const Tensor& ys = run.tensor("y");  // (steps, B) i64
  const int64_t steps = c.i("steps");
  (void)c.i("batch");  // implied by the stored batches
  std::vector<double> losses;
  for (int64_t step = 0; step < steps; ++step) {
    optimizer.zero_grad();
    Tensor logits = (*model)(xs.select_view(0, step).contiguous());  // (B, outputs)
    Tensor loss = cross_entropy(logits, ys.select_view(0, step).contiguous());
    autograd::backward(loss);
    optimizer.step();
    losses.push_back(loss.item());
  }
  EXPECT_TRUE(c.unused().empty()) << "config key not used: " << c.unused().front();
  expect_series("mlp loss", losses, run.tensor("loss"), kLossRtol);
}

TEST(TrainGolden, GptAdamWWarmupCosineClippingMatchesPyTorch) {
  GoldenRun run("train_gpt");
  const Options& c = run.config;
  nn::GptConfig config;
  config.vocab = c.i("vocab");
  config.context = c.i("context");
  config.layers = c.i("layers");
  config.heads = c.i("heads");
  config.width = c.i("width");
  config.dropout = 0;
  config.tied_embeddings = true;
  config.bias = true;
  auto model = nn::make_gpt(config, 0);
  model->load_state_dict(run.initial, /*strict=*/true);

  optim::AdamWOptions options;
  options.lr = c.f("lr");
  options.beta1 = c.f("beta1");
  options.beta2 = c.f("beta2");
  options.eps = c.f("eps");
  optim::AdamW optimizer(optim::default_param_groups(*model, c.f("weight_decay")), options);
  const int64_t steps = c.i("steps");
  // PyTorch's SequentialLR(LinearLR(1/warmup), CosineAnnealingLR(steps - warmup, lr_min)).
  optim::WarmupDecaySchedule schedule(c.f("lr"), c.i("warmup"), steps, c.f("lr_min"),
                                      optim::WarmupDecaySchedule::Decay::cosine);
  const double clip = c.f("clip");

  const Tensor& tokens = run.tensor("tokens");    // (steps, B, T) i64
  const Tensor& targets = run.tensor("targets");  // (steps, B, T) i64
  (void)c.i("batch");  // implied by the stored batches
  std::vector<double> losses, lrs, norms;
  for (int64_t step = 0; step < steps; ++step) {
    optimizer.set_lr(schedule.lr_at(step));
    optimizer.zero_grad();
    Tensor logits = (*model)(tokens.select_view(0, step).contiguous());  // (B, T, V)
    Tensor loss =
        cross_entropy(reshape(logits, {-1, config.vocab}), targets.select_view(0, step).contiguous().view({-1}));
    autograd::backward(loss);
    norms.push_back(optim::clip_grad_norm(model->parameters(), clip));
    optimizer.step();
    losses.push_back(loss.item());
    lrs.push_back(optimizer.lr());
  }
  EXPECT_TRUE(c.unused().empty()) << "config key not used: " << c.unused().front();
  expect_series("gpt lr", lrs, run.tensor("lr"), 1e-12);
  expect_series("gpt norm", norms, run.tensor("grad_norm"), kLossRtol);
  expect_series("gpt loss", losses, run.tensor("loss"), kLossRtol);
}

}  // namespace
}  // namespace frugal
