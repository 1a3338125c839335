// Module bookkeeping (names, state dicts, load errors, train/eval) and each layer's forward:
// shapes, agreement with the op it wraps, Dropout's (seed, step, layer) masks, BatchNorm's modes.
#include <gtest/gtest.h>

#include <cmath>

#include "frugal/autograd/precision.h"
#include "frugal/nn/nn.h"
#include "test_util.h"

namespace frugal {
namespace {
using testing::all_close;
using testing::random_tensor;

// A two-level tree: `a` (Linear), `norm` (BatchNorm1d), `inner` (Sequential of Linear, ReLU, Linear).
class Tree : public nn::Module {
 public:
  Tree() {
    scale_ = register_parameter("scale", Tensor::ones({3}));
    a_ = register_module("a", std::make_shared<nn::Linear>(4, 3));
    norm_ = register_module("norm", std::make_shared<nn::BatchNorm1d>(3));
    inner_ = register_module("inner", std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
                                          std::make_shared<nn::Linear>(3, 5), std::make_shared<nn::ReLU>(),
                                          std::make_shared<nn::Linear>(5, 2, false)}));
  }
  Tensor forward(const Tensor& x) override { return inner_->forward(mul(norm_->forward(a_->forward(x)), scale_)); }
  std::string type_name() const override { return "Tree"; }

 private:
  Tensor scale_;
  std::shared_ptr<nn::Linear> a_;
  std::shared_ptr<nn::BatchNorm1d> norm_;
  std::shared_ptr<nn::Sequential> inner_;
};

std::vector<std::string> names(const nn::NamedTensors& tensors) {
  std::vector<std::string> out;
  for (const auto& [name, t] : tensors) out.push_back(name);
  return out;
}

TEST(Module, NamesFollowPyTorchOrder) {
  Tree tree;
  EXPECT_EQ(names(tree.named_parameters()),
            (std::vector<std::string>{"scale", "a.weight", "a.bias", "norm.weight", "norm.bias", "inner.0.weight",
                                      "inner.0.bias", "inner.2.weight"}));
  EXPECT_EQ(names(tree.named_buffers()),
            (std::vector<std::string>{"norm.running_mean", "norm.running_var", "norm.num_batches_tracked"}));
  // state_dict: per module its parameters then its buffers, as torch.nn.Module.state_dict().
  EXPECT_EQ(names(tree.state_dict()),
            (std::vector<std::string>{"scale", "a.weight", "a.bias", "norm.weight", "norm.bias", "norm.running_mean",
                                      "norm.running_var", "norm.num_batches_tracked", "inner.0.weight",
                                      "inner.0.bias", "inner.2.weight"}));
  EXPECT_EQ(tree.num_parameters(), 3 + 12 + 3 + 3 + 3 + 15 + 5 + 10);
  for (const Tensor& p : tree.parameters()) EXPECT_TRUE(p.requires_grad());
  EXPECT_EQ(tree.named_parameters()[1].second.shape(), (Shape{3, 4}));
}

TEST(Module, DuplicateNamesAreRejected) {
  nn::Sequential s;
  s.register_parameter("w", Tensor::zeros({2}));
  EXPECT_THROW(s.register_buffer("w", Tensor::zeros({2})), InternalError);
  EXPECT_THROW(s.register_parameter("a.b", Tensor::zeros({2})), InternalError);
}

TEST(Module, LoadStateDictCopiesValuesInPlace) {
  Tree source, target;
  nn::init_parameters(source, 1);
  nn::init_parameters(target, 2);
  source.named_buffers()[0].second.fill(0.5);
  Tensor target_weight = target.named_parameters()[1].second;  // a handle held elsewhere (an optimizer)
  target.load_state_dict(source.state_dict());
  auto s = source.state_dict(), t = target.state_dict();
  for (size_t i = 0; i < s.size(); ++i) EXPECT_TRUE(all_close(t[i].second, s[i].second, 0, 0)) << s[i].first;
  EXPECT_TRUE(all_close(target_weight, s[1].second, 0, 0));  // same storage, new values
  EXPECT_FALSE(s[1].second.same(t[1].second));
  // The map overload.
  std::map<std::string, Tensor> as_map(s.begin(), s.end());
  Tree third;
  third.load_state_dict(as_map);
  EXPECT_TRUE(all_close(third.named_parameters()[2].second, s[2].second, 0, 0));
}

TEST(Module, LoadStateDictErrorsNameKeysAndShapes) {
  Tree tree;
  auto state = tree.state_dict();

  auto missing = state;
  missing.erase(missing.begin() + 1);  // a.weight
  try {
    tree.load_state_dict(missing);
    FAIL() << "missing key accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("missing key 'a.weight'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("(3, 4)"), std::string::npos) << e.what();
  }
  tree.load_state_dict(missing, /*strict=*/false);  // fine when not strict

  auto unexpected = state;
  unexpected.emplace_back("head.weight", Tensor::zeros({7}));
  try {
    tree.load_state_dict(unexpected);
    FAIL() << "unexpected key accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("unexpected key 'head.weight' with shape (7,)"), std::string::npos) << e.what();
  }
  tree.load_state_dict(unexpected, /*strict=*/false);

  auto wrong = state;
  wrong[1].second = Tensor::full({4, 3}, 9.0);
  Tensor before = tree.named_parameters()[0].second.clone();
  wrong[0].second = Tensor::full({3}, 7.0);  // a valid entry that must not be applied
  for (bool strict : {true, false}) {
    try {
      tree.load_state_dict(wrong, strict);
      FAIL() << "shape mismatch accepted";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("shape mismatch for 'a.weight': state has (4, 3), model expects (3, 4)"),
                std::string::npos)
          << e.what();
    }
  }
  EXPECT_TRUE(all_close(tree.named_parameters()[0].second, before, 0, 0));  // nothing copied
}

TEST(Module, TrainEvalIsRecursive) {
  Tree tree;
  EXPECT_TRUE(tree.is_training());
  tree.eval();
  for (auto& [name, m] : tree.named_modules()) EXPECT_FALSE(m->is_training()) << name;
  tree.train();
  for (auto& [name, m] : tree.named_modules()) EXPECT_TRUE(m->is_training()) << name;
}

TEST(Layers, LinearMatchesItsFormula) {
  nn::Linear layer(3, 2);
  Tensor x = random_tensor({4, 3}, 1, DType::f64);
  Tensor w = layer.weight().to(DType::f64), b = layer.bias().to(DType::f64);
  Tensor y = layer(x.to(DType::f32));
  ASSERT_EQ(y.shape(), (Shape{4, 2}));
  for (int64_t n = 0; n < 4; ++n)
    for (int64_t o = 0; o < 2; ++o) {
      double expected = b.at({o});
      for (int64_t i = 0; i < 3; ++i) expected += x.at({n, i}) * w.at({o, i});
      EXPECT_NEAR(y.at({n, o}), expected, 1e-5);
    }
  EXPECT_THROW(layer(Tensor::zeros({4, 5})), InputError);
}

// Sequential runs a BatchNorm2d followed by a ReLU as one fused op (forward_chain): outputs,
// gradients and running statistics equal the two layers run one after the other, bit for bit.
TEST(Layers, SequentialFusesBatchNormAndRelu) {
  auto make = [] {
    auto seq = std::make_shared<nn::Sequential>();
    seq->push_back(std::make_shared<nn::BatchNorm2d>(4));
    seq->push_back(std::make_shared<nn::ReLU>());
    return seq;
  };
  auto fused = make(), plain = make();
  Tensor x = random_tensor({6, 4, 5, 5}, 31, DType::f32, -2.0, 2.0);
  Tensor x1 = x.clone(), x2 = x.clone();
  x1.set_requires_grad(true);
  x2.set_requires_grad(true);
  Tensor y1 = fused->forward(x1);
  Tensor y2 = (*plain)[1].forward((*plain)[0].forward(x2));
  EXPECT_EQ(y1.grad_fn()->name, "batch_norm_relu");
  EXPECT_TRUE(testing::same_bits(y1, y2));
  Tensor g = random_tensor(y1.shape(), 32);
  autograd::backward(y1, g);
  autograd::backward(y2, g);
  EXPECT_TRUE(testing::same_bits(x1.grad(), x2.grad()));
  auto p1 = fused->named_parameters(), p2 = plain->named_parameters();
  for (size_t i = 0; i < p1.size(); ++i) EXPECT_TRUE(testing::same_bits(p1[i].second.grad(), p2[i].second.grad()));
  auto b1 = fused->named_buffers(), b2 = plain->named_buffers();
  for (size_t i = 0; i < b1.size(); ++i) EXPECT_TRUE(testing::same_bits(b1[i].second, b2[i].second)) << b1[i].first;
}

// ... and a BatchNorm2d, ReLU and 2x2 MaxPool2d on channels-last input as one op
// (batch_norm_relu_max_pool2x2), again bit for bit against the three layers.
TEST(Layers, SequentialFusesBatchNormReluAndPool) {
  auto make = [] {
    auto seq = std::make_shared<nn::Sequential>();
    seq->push_back(std::make_shared<nn::BatchNorm2d>(20));
    seq->push_back(std::make_shared<nn::ReLU>());
    seq->push_back(std::make_shared<nn::MaxPool2d>(2));
    return seq;
  };
  auto fused = make(), plain = make();
  Tensor x = to_channels_last(random_tensor({6, 20, 6, 7}, 33, DType::f32, -2.0, 2.0));
  Tensor x1 = to_channels_last(x.clone()), x2 = to_channels_last(x.clone());
  x1.set_requires_grad(true);
  x2.set_requires_grad(true);
  Tensor y1 = fused->forward(x1);
  Tensor y2 = (*plain)[2].forward((*plain)[1].forward((*plain)[0].forward(x2)));
  EXPECT_EQ(y1.grad_fn()->name, "batch_norm_relu_max_pool2x2");
  EXPECT_EQ(y2.grad_fn()->name, "max_pool2d");
  EXPECT_TRUE(testing::same_bits(y1, y2));
  Tensor g = random_tensor(y1.shape(), 34);
  autograd::backward(y1, g);
  autograd::backward(y2, g);
  EXPECT_TRUE(testing::same_bits(x1.grad(), x2.grad()));
  auto p1 = fused->named_parameters(), p2 = plain->named_parameters();
  for (size_t i = 0; i < p1.size(); ++i) EXPECT_TRUE(testing::same_bits(p1[i].second.grad(), p2[i].second.grad()));
}

// In bf16-mixed a Conv2d feeding BatchNorm2d + ReLU + 2x2 MaxPool2d on channels-last input that
// needs a gradient stores its output in bf16 for the fused op (conv2d's bf16_output); run layer
// by layer it stays f32. The two agree to bf16 rounding of the convolution's output, and both
// train the same parameters. (Without a gradient into x the four run as one op: next test.)
TEST(Layers, SequentialStoresConvOutputInBf16ForBatchNorm) {
  PrecisionGuard guard(Precision::bf16_mixed);
  auto make = [] {
    Conv2dOptions same;
    same.padding_h = same.padding_w = 1;
    auto seq = std::make_shared<nn::Sequential>();
    seq->push_back(std::make_shared<nn::Conv2d>(3, 16, 3, same));
    seq->push_back(std::make_shared<nn::BatchNorm2d>(16));
    seq->push_back(std::make_shared<nn::ReLU>());
    seq->push_back(std::make_shared<nn::MaxPool2d>(2));
    return seq;
  };
  auto chained = make(), layered = make();
  Tensor x = to_channels_last(random_tensor({4, 3, 8, 8}, 35, DType::f32, -2.0, 2.0));
  x.set_requires_grad(true);
  Tensor y1 = chained->forward(x);
  Tensor y2 = x;
  for (int i = 0; i < 4; ++i) y2 = (*layered)[i].forward(y2);
  EXPECT_EQ(y1.grad_fn()->name, "batch_norm_relu_max_pool2x2");
  EXPECT_EQ(y1.grad_fn()->inputs[0].dtype(), DType::bf16);
  EXPECT_EQ(y2.grad_fn()->inputs[0].dtype(), DType::f32);
  EXPECT_EQ(y1.dtype(), DType::f32);
  EXPECT_TRUE(all_close(y1, y2, 3e-2, 3e-2));  // batch norm's unit scale: bf16 steps of ~1/128
  Tensor g = random_tensor(y1.shape(), 36);
  autograd::backward(y1, g);
  autograd::backward(y2, g);
  auto p1 = chained->named_parameters(), p2 = layered->named_parameters();
  // Relative error over each whole gradient: batch norm's backward subtracts means, so single
  // elements cancel, and rounding can change a pooling window's winner. The convolution's bias
  // is left out: batch norm removes its effect, its gradient is rounding noise around 0.
  for (size_t i = 0; i < p1.size(); ++i) {
    if (p1[i].first == "0.bias") continue;
    std::vector<double> a = p1[i].second.grad().to_vector<double>(), e = p2[i].second.grad().to_vector<double>();
    double diff = 0, norm = 0;
    for (size_t k = 0; k < a.size(); ++k) diff += (a[k] - e[k]) * (a[k] - e[k]), norm += e[k] * e[k];
    EXPECT_LT(std::sqrt(diff / norm), 5e-2) << p1[i].first;
  }
  // An output too small to pool stays f32 (the layers' own errors apply, as in fp32).
  Tensor thin = to_channels_last(random_tensor({4, 3, 3, 8}, 37));
  Conv2dOptions none;
  auto seq = std::make_shared<nn::Sequential>();
  seq->push_back(std::make_shared<nn::Conv2d>(3, 16, 3, none));  // -> (4, 16, 1, 6)
  seq->push_back(std::make_shared<nn::BatchNorm2d>(16));
  seq->push_back(std::make_shared<nn::ReLU>());
  seq->push_back(std::make_shared<nn::MaxPool2d>(2));
  std::string bf16_error, fp32_error;
  try { seq->forward(thin); } catch (const InputError& e) { bf16_error = e.what(); }
  {
    PrecisionGuard fp32(Precision::fp32);
    try { seq->forward(thin); } catch (const InputError& e) { fp32_error = e.what(); }
  }
  EXPECT_EQ(bf16_error, fp32_error);
  EXPECT_EQ(bf16_error.find("bf16"), std::string::npos) << bf16_error;
}

// A first block -- Conv2d, BatchNorm2d, ReLU, 2x2 MaxPool2d on an input without gradient -- runs
// as conv2d_batch_norm_relu_max_pool2x2 (the convolution's output never stored), in every
// precision; layer by layer the same parameters get the same gradients to rounding, the running
// statistics and the batch count move alike, and eval mode runs it too.
TEST(Layers, SequentialRunsAFirstBlockAsOneOp) {
  auto make = [] {
    Conv2dOptions same;
    same.padding_h = same.padding_w = 1;
    auto seq = std::make_shared<nn::Sequential>();
    seq->push_back(std::make_shared<nn::Conv2d>(1, 16, 3, same));
    seq->push_back(std::make_shared<nn::BatchNorm2d>(16));
    seq->push_back(std::make_shared<nn::ReLU>());
    seq->push_back(std::make_shared<nn::MaxPool2d>(2));
    return seq;
  };
  for (Precision precision : {Precision::fp32, Precision::bf16_mixed, Precision::fp16_mixed}) {
    PrecisionGuard guard(precision);
    auto chained = make(), layered = make();
    const Tensor x = random_tensor({4, 1, 10, 10}, 38, DType::f32, -1.0, 2.0);
    const int64_t before = Storage::live_bytes(MemoryCategory::activations);
    Tensor y1 = chained->forward(x);
    const int64_t kept = Storage::live_bytes(MemoryCategory::activations) - before;
    ASSERT_TRUE(y1.grad_fn()) << precision_name(precision);
    EXPECT_EQ(y1.grad_fn()->name, "conv2d_batch_norm_relu_max_pool2x2");
    // The pooled output, its winners and the rounded input (bf16, fp16); not the 16 x 10 x 10 maps.
    EXPECT_LT(kept, 4 * 16 * 10 * 10 * 4) << precision_name(precision);
    Tensor y2 = x;
    for (int i = 0; i < 4; ++i) y2 = (*layered)[i].forward(y2);
    EXPECT_NE(y2.grad_fn()->name, "conv2d_batch_norm_relu_max_pool2x2");
    // bf16-mixed: the layers round the convolution's output to bf16, the op does not.
    const double tol = precision == Precision::bf16_mixed ? 3e-2 : 1e-4;
    EXPECT_TRUE(all_close(y1, y2, tol, tol)) << precision_name(precision);
    Tensor g = random_tensor(y1.shape(), 39);
    autograd::backward(y1, g);
    autograd::backward(y2, g);
    auto p1 = chained->named_parameters(), p2 = layered->named_parameters();
    for (size_t i = 0; i < p1.size(); ++i) {
      if (p1[i].first == "0.bias") continue;  // rounding noise around 0 (batch norm removes the bias)
      std::vector<double> a = p1[i].second.grad().to_vector<double>(), e = p2[i].second.grad().to_vector<double>();
      double diff = 0, norm = 0;
      for (size_t k = 0; k < a.size(); ++k) diff += (a[k] - e[k]) * (a[k] - e[k]), norm += e[k] * e[k];
      EXPECT_LT(std::sqrt(diff / norm), precision == Precision::fp32 ? 1e-4 : 5e-2)
          << p1[i].first << " " << precision_name(precision);
    }
    auto b1 = chained->named_buffers(), b2 = layered->named_buffers();
    for (size_t i = 0; i < b1.size(); ++i)
      EXPECT_TRUE(all_close(b1[i].second, b2[i].second, tol, tol)) << b1[i].first << " " << precision_name(precision);
    chained->eval(), layered->eval();
    Tensor e1 = chained->forward(x), e2 = x;
    for (int i = 0; i < 4; ++i) e2 = (*layered)[i].forward(e2);
    EXPECT_TRUE(all_close(e1, e2, tol, tol)) << "eval " << precision_name(precision);
    autograd::NoGradGuard no_grad;  // evaluation without gradients: the op needs only the input's shift
    EXPECT_TRUE(testing::same_bits(chained->forward(x), e1)) << "eval, no grad " << precision_name(precision);
  }
}

TEST(Layers, ForwardShapes) {
  Tensor image = random_tensor({2, 3, 9, 8}, 2);  // (N, C, H, W)
  Conv2dOptions same;
  same.padding_h = same.padding_w = 1;
  EXPECT_EQ(nn::Conv2d(3, 5, 3, same)(image).shape(), (Shape{2, 5, 9, 8}));
  EXPECT_EQ(nn::Conv2d(3, 4, 3)(image).shape(), (Shape{2, 4, 7, 6}));
  EXPECT_EQ(nn::Conv2d(3, 4, 3).weight().shape(), (Shape{4, 3, 3, 3}));
  EXPECT_EQ(nn::MaxPool2d(2)(image).shape(), (Shape{2, 3, 4, 4}));
  EXPECT_EQ(nn::AvgPool2d(3, 1, 1)(image).shape(), (Shape{2, 3, 9, 8}));
  EXPECT_EQ(nn::AdaptiveAvgPool2d(1, 1)(image).shape(), (Shape{2, 3, 1, 1}));
  EXPECT_EQ(nn::Flatten()(image).shape(), (Shape{2, 216}));
  EXPECT_EQ(nn::Flatten(2)(image).shape(), (Shape{2, 3, 72}));
  EXPECT_EQ(nn::BatchNorm2d(3)(image).shape(), image.shape());
  EXPECT_EQ(nn::BatchNorm1d(3)(random_tensor({4, 3, 5}, 3)).shape(), (Shape{4, 3, 5}));
  EXPECT_EQ(nn::LayerNorm(8)(image).shape(), image.shape());
  Tensor ids = Tensor::from_vector(std::vector<int64_t>{0, 4, 2, 4, 1, 3}, {2, 3});
  EXPECT_EQ(nn::Embedding(5, 7)(ids).shape(), (Shape{2, 3, 7}));
  for (const char* act : {"relu", "gelu", "gelu_tanh", "silu", "sigmoid", "tanh"})
    EXPECT_EQ((*nn::make_activation(act))(image).shape(), image.shape()) << act;
  EXPECT_THROW(nn::make_activation("swish"), InputError);
  EXPECT_THROW(nn::Conv2d(3, 4, 3)(random_tensor({2, 2, 5, 5}, 4)), InputError);
  EXPECT_THROW(nn::Conv2d(3, 4, 3, Conv2dOptions{1, 1, 0, 0, 1, 1, 2}), InputError);  // groups 2 vs 3 channels
}

TEST(Layers, ActivationsWrapTheirOps) {
  Tensor x = random_tensor({3, 5}, 5);
  EXPECT_TRUE(all_close(nn::GELU(GeluApproximation::tanh)(x), gelu(x, GeluApproximation::tanh), 0, 0));
  EXPECT_TRUE(all_close(nn::SiLU()(x), silu(x), 0, 0));
  EXPECT_TRUE(all_close(nn::Tanh()(x), tanh(x), 0, 0));
}

TEST(Layers, DropoutMasksDependOnSeedStepAndLayer) {
  Tensor x = Tensor::ones({64, 64});
  nn::Dropout first(0.5, 0), second(0.5, 1);
  nn::set_random_context({7, 3});
  Tensor a = first(x), a_again = first(x), b = second(x);
  EXPECT_TRUE(all_close(a, a_again, 0, 0));  // same (seed, step, layer): same mask
  EXPECT_FALSE(all_close(a, b, 0, 0));        // another layer: another mask
  int64_t kept = 0;
  for (double v : a.to_vector<double>()) {
    EXPECT_TRUE(v == 0.0 || v == 2.0) << v;  // inverted dropout scales by 1/(1-p)
    kept += v != 0.0;
  }
  EXPECT_NEAR(double(kept) / 4096.0, 0.5, 0.05);
  nn::set_random_context({7, 4});
  EXPECT_FALSE(all_close(first(x), a, 0, 0));  // next step: new mask
  nn::set_random_context({8, 3});
  EXPECT_FALSE(all_close(first(x), a, 0, 0));  // other seed: new mask
  first.eval();
  EXPECT_TRUE(all_close(first(x), x, 0, 0));  // identity in eval
  EXPECT_THROW(nn::Dropout(1.0), InputError);
  nn::set_random_context({});
}

TEST(Layers, IndexDropoutsNumbersInConstructionOrder) {
  nn::Sequential model(std::vector<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Dropout>(0.1), std::make_shared<nn::Linear>(2, 2), std::make_shared<nn::Dropout>(0.2),
      std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{std::make_shared<nn::Dropout>(0.3)})});
  nn::index_dropouts(model);
  std::vector<int64_t> indices;
  for (auto& [name, m] : model.named_modules())
    if (auto* d = dynamic_cast<nn::Dropout*>(m)) indices.push_back(d->index());
  EXPECT_EQ(indices, (std::vector<int64_t>{0, 1, 2}));
}

TEST(Layers, BatchNormTrainUpdatesStatsEvalUsesThem) {
  nn::BatchNorm2d bn(2);
  Tensor x = random_tensor({4, 2, 3, 3}, 6, DType::f32, 1.0, 3.0);  // mean ~2 per channel
  Tensor y_train = bn(x);
  EXPECT_EQ(bn.num_batches_tracked(), 1);
  // Training output is normalized per channel over (N, H, W): mean ~ 0.
  Tensor channel_mean = mean(y_train, {0, 2, 3});
  for (double m : channel_mean.to_vector<double>()) EXPECT_NEAR(m, 0.0, 1e-5);
  // running = 0.9 * initial + 0.1 * batch statistic.
  Tensor batch_mean = mean(x, {0, 2, 3});
  EXPECT_TRUE(all_close(bn.running_mean(), mul_scalar(batch_mean, 0.1), 1e-6, 1e-5));
  for (double v : bn.running_var().to_vector<double>()) EXPECT_GT(v, 0.9);  // 0.9 * 1 + 0.1 * var

  bn.eval();
  Tensor running_mean = bn.running_mean().clone();
  Tensor y_eval = bn(x);
  EXPECT_FALSE(all_close(y_eval, y_train, 1e-3, 0));  // eval normalizes with running stats
  EXPECT_TRUE(all_close(bn.running_mean(), running_mean, 0, 0));
  EXPECT_EQ(bn.num_batches_tracked(), 1);
  // Eval formula per element: (x - running_mean) / sqrt(running_var + eps) * weight + bias.
  double rm = bn.running_mean().at({1}), rv = bn.running_var().at({1});
  EXPECT_NEAR(y_eval.at({2, 1, 1, 2}), (x.at({2, 1, 1, 2}) - rm) / std::sqrt(rv + 1e-5), 1e-5);
}

}  // namespace
}  // namespace frugal
