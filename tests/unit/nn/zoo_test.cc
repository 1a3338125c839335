// Zoo models: state-dict names and shapes as PyTorch would give them, forward shapes, GPT's init
// scheme and causality, train/eval behaviour, config errors and FLOP counts.
#include <cmath>

#include <gtest/gtest.h>

#include "frugal/nn/nn.h"
#include "test_util.h"

namespace frugal {
namespace {
using testing::all_close;
using testing::random_tensor;

std::vector<std::pair<std::string, Shape>> layout(const nn::Module& m) {
  std::vector<std::pair<std::string, Shape>> out;
  for (const auto& [name, t] : m.state_dict()) out.emplace_back(name, t.shape());
  return out;
}

using Layout = std::vector<std::pair<std::string, Shape>>;

TEST(Zoo, MlpNamesAndShapes) {
  auto mlp = nn::make_mlp({784, {64, 32}, 10, "relu", 0.1});
  // Sequential(Flatten, Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear)
  EXPECT_EQ(layout(*mlp), (Layout{{"layers.1.weight", {64, 784}},
                                  {"layers.1.bias", {64}},
                                  {"layers.4.weight", {32, 64}},
                                  {"layers.4.bias", {32}},
                                  {"layers.7.weight", {10, 32}},
                                  {"layers.7.bias", {10}}}));
  auto no_dropout = nn::make_mlp({784, {64}, 10});
  EXPECT_EQ(layout(*no_dropout)[2].first, "layers.3.weight");
  EXPECT_EQ(mlp->forward(random_tensor({5, 1, 28, 28}, 1)).shape(), (Shape{5, 10}));
  EXPECT_EQ(nn::make_mlp({3, {}, 2})->forward(random_tensor({4, 3}, 2)).shape(), (Shape{4, 2}));
}

TEST(Zoo, CnnNamesAndShapes) {
  nn::CnnConfig config;
  config.in_channels = 1, config.height = 28, config.width = 28;
  config.channels = {8, 16};
  config.hidden = {32};
  config.dropout = 0.25;
  config.outputs = 10;
  auto cnn = nn::make_cnn(config);
  // features: Conv2d, BatchNorm2d, ReLU, MaxPool2d per block; 28 -> 14 -> 7.
  EXPECT_EQ(layout(*cnn), (Layout{{"features.0.weight", {8, 1, 3, 3}},
                                  {"features.0.bias", {8}},
                                  {"features.1.weight", {8}},
                                  {"features.1.bias", {8}},
                                  {"features.1.running_mean", {8}},
                                  {"features.1.running_var", {8}},
                                  {"features.1.num_batches_tracked", {}},
                                  {"features.4.weight", {16, 8, 3, 3}},
                                  {"features.4.bias", {16}},
                                  {"features.5.weight", {16}},
                                  {"features.5.bias", {16}},
                                  {"features.5.running_mean", {16}},
                                  {"features.5.running_var", {16}},
                                  {"features.5.num_batches_tracked", {}},
                                  {"classifier.1.weight", {32, 16 * 7 * 7}},
                                  {"classifier.1.bias", {32}},
                                  {"classifier.4.weight", {10, 32}},
                                  {"classifier.4.bias", {10}}}));
  EXPECT_EQ(cnn->forward(random_tensor({3, 1, 28, 28}, 3)).shape(), (Shape{3, 10}));

  config.batch_norm = false, config.pool = "avg", config.kernel = 5, config.hidden = {};
  config.height = 13, config.width = 9;  // 13 -> 6 -> 3, 9 -> 4 -> 2
  auto plain = nn::make_cnn(config);
  EXPECT_EQ(layout(*plain).back(), (std::pair<std::string, Shape>{"classifier.1.bias", {10}}));
  EXPECT_EQ(layout(*plain)[4], (std::pair<std::string, Shape>{"classifier.1.weight", {10, 16 * 3 * 2}}));
  EXPECT_EQ(plain->forward(random_tensor({2, 1, 13, 9}, 4)).shape(), (Shape{2, 10}));
  EXPECT_THROW(plain->forward(random_tensor({2, 1, 28, 28}, 4)), InputError);

  config.pool = "none";
  EXPECT_EQ(nn::make_cnn(config)->forward(random_tensor({2, 1, 13, 9}, 5)).shape(), (Shape{2, 10}));
}

TEST(Zoo, GptNamesAndShapes) {
  nn::GptConfig config{/*vocab=*/11, /*context=*/8, /*layers=*/2, /*heads=*/2, /*width=*/16};
  auto gpt = nn::make_gpt(config);
  Layout expected = {{"wte.weight", {11, 16}}, {"wpe.weight", {8, 16}}};
  for (int i = 0; i < 2; ++i) {
    std::string b = "blocks." + std::to_string(i) + ".";
    Layout block = {{b + "ln1.weight", {16}},          {b + "ln1.bias", {16}},
                    {b + "attn.qkv.weight", {48, 16}}, {b + "attn.qkv.bias", {48}},
                    {b + "attn.proj.weight", {16, 16}}, {b + "attn.proj.bias", {16}},
                    {b + "ln2.weight", {16}},          {b + "ln2.bias", {16}},
                    {b + "mlp.fc.weight", {64, 16}},   {b + "mlp.fc.bias", {64}},
                    {b + "mlp.proj.weight", {16, 64}}, {b + "mlp.proj.bias", {16}}};
    expected.insert(expected.end(), block.begin(), block.end());
  }
  expected.push_back({"ln_f.weight", {16}});
  expected.push_back({"ln_f.bias", {16}});
  EXPECT_EQ(layout(*gpt), expected);  // tied head: stored once, as wte.weight

  Tensor ids = Tensor::from_vector(std::vector<int64_t>{1, 2, 3, 4, 5, 10, 0, 7, 7, 7}, {2, 5});
  EXPECT_EQ(gpt->forward(ids).shape(), (Shape{2, 5, 11}));

  config.tied_embeddings = false, config.bias = false;
  auto untied = nn::make_gpt(config);
  Layout names = layout(*untied);
  EXPECT_EQ(names.back(), (std::pair<std::string, Shape>{"head.weight", {11, 16}}));
  EXPECT_EQ(names[2].first, "blocks.0.ln1.weight");
  EXPECT_EQ(names[3].first, "blocks.0.attn.qkv.weight");  // no biases anywhere
  EXPECT_EQ(names.size(), size_t(2 + 2 * 6 + 1 + 1));
  EXPECT_EQ(untied->forward(ids).shape(), (Shape{2, 5, 11}));
}

TEST(Zoo, GptTiedHeadUsesTheEmbedding) {
  nn::GptConfig config{7, 4, 1, 1, 8};
  auto gpt = nn::make_gpt(config, 3);
  Tensor ids = Tensor::from_vector(std::vector<int64_t>{1, 2, 3}, {1, 3});
  Tensor before = gpt->forward(ids);
  Tensor wte = gpt->named_parameters()[0].second;
  wte.fill(0.0);  // all-zero embeddings and head: logits are all zero
  Tensor after = gpt->forward(ids);
  EXPECT_FALSE(all_close(before, after, 1e-6, 0));
  for (double v : after.to_vector<double>()) EXPECT_EQ(v, 0.0);
}

TEST(Zoo, GptInitFollowsGpt2) {
  nn::GptConfig config{512, 64, 4, 4, 128};
  auto gpt = nn::make_gpt(config, 1);
  auto std_of = [](const Tensor& t) {
    double s = 0;
    for (double v : t.to_vector<double>()) s += v * v;
    return std::sqrt(s / double(t.numel()));
  };
  const double residual = 0.02 / std::sqrt(8.0);
  for (const auto& [name, p] : gpt->named_parameters()) {
    auto ends_with = [&name = name](const std::string& suffix) {
      return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    if (ends_with("proj.weight")) {
      EXPECT_NEAR(std_of(p), residual, 0.05 * residual) << name;
    } else if (ends_with("fc.weight") || ends_with("qkv.weight") || name == "wte.weight" || name == "wpe.weight") {
      EXPECT_NEAR(std_of(p), 0.02, 0.001) << name;
    } else if (name.find("ln") != std::string::npos && ends_with("weight")) {
      for (double v : p.to_vector<double>()) ASSERT_EQ(v, 1.0) << name;
    } else {
      EXPECT_TRUE(ends_with("bias")) << name;
      for (double v : p.to_vector<double>()) ASSERT_EQ(v, 0.0) << name;
    }
  }
}

TEST(Zoo, GptIsCausal) {
  nn::GptConfig config{13, 6, 2, 2, 8};
  auto gpt = nn::make_gpt(config, 2);
  Tensor a = Tensor::from_vector(std::vector<int64_t>{1, 5, 2, 8, 3, 4}, {1, 6});
  Tensor b = Tensor::from_vector(std::vector<int64_t>{1, 5, 2, 8, 12, 0}, {1, 6});  // differs from t = 4 on
  Tensor la = gpt->forward(a), lb = gpt->forward(b);
  EXPECT_TRUE(all_close(slice(la, 1, 0, 4), slice(lb, 1, 0, 4), 1e-6, 1e-5));
  EXPECT_FALSE(all_close(slice(la, 1, 4, 6), slice(lb, 1, 4, 6), 1e-4, 0));
}

TEST(Zoo, GptInputErrors) {
  auto gpt = nn::make_gpt({13, 4, 1, 2, 8});
  EXPECT_THROW(gpt->forward(Tensor::zeros({1, 5}, DType::i64)), InputError);  // longer than context
  EXPECT_THROW(gpt->forward(Tensor::zeros({1, 3})), InputError);              // not token ids
  EXPECT_THROW(nn::make_gpt({13, 4, 1, 3, 8}), InputError);                   // width % heads
}

TEST(Zoo, ConfigErrorsNameTheField) {
  try {
    nn::make_mlp({784, {64}, 10, "swish"});
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("model.activation"), std::string::npos) << e.what();
  }
  try {
    nn::make_mlp({784, {64, 0}, 10});
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("model.hidden[1]"), std::string::npos) << e.what();
  }
  nn::CnnConfig config;
  config.channels = {4, 4, 4, 4, 4, 4};  // 28 pooled six times is nothing
  config.outputs = 10;
  EXPECT_THROW(nn::make_cnn(config), InputError);
  config.channels = {4};
  config.pool = "median";
  EXPECT_THROW(nn::make_cnn(config), InputError);
}

TEST(Zoo, DropoutAndBatchNormFollowTrainEval) {
  nn::CnnConfig config;
  config.height = config.width = 8;
  config.channels = {4};
  config.hidden = {16};
  config.dropout = 0.5;
  config.outputs = 3;
  auto cnn = nn::make_cnn(config, 1);
  Tensor x = random_tensor({4, 1, 8, 8}, 6);
  nn::set_random_context({1, 0});
  Tensor train0 = cnn->forward(x);
  nn::set_random_context({1, 1});
  Tensor train1 = cnn->forward(x);
  EXPECT_FALSE(all_close(train0, train1, 1e-6, 0));  // new dropout mask each step
  cnn->eval();
  Tensor eval0 = cnn->forward(x), eval1 = cnn->forward(x);
  EXPECT_TRUE(all_close(eval0, eval1, 0, 0));
  // One sample alone gives the same eval output as inside the batch (running stats, no dropout).
  Tensor single = cnn->forward(slice(x, 0, 1, 2));
  EXPECT_TRUE(all_close(single, slice(eval0, 0, 1, 2), 1e-5, 1e-5));
  cnn->train();
  nn::set_random_context({1, 0});
  Tensor train_again = cnn->forward(x);
  nn::set_random_context({});
  // Same (seed, step) as train0 but running stats moved: BatchNorm in training uses batch stats, so
  // the output repeats exactly.
  EXPECT_TRUE(all_close(train_again, train0, 0, 0));
}

TEST(Zoo, FlopsPerSample) {
  EXPECT_EQ(nn::count_flops_per_sample(nn::MlpConfig{784, {100}, 10}), 2 * (784 * 100 + 100 * 10));
  nn::CnnConfig cnn;
  cnn.height = cnn.width = 28, cnn.channels = {8}, cnn.outputs = 10;
  EXPECT_EQ(nn::count_flops_per_sample(cnn), 2 * (28 * 28 * 8 * 9) + 2 * (8 * 14 * 14 * 10));
  nn::GptConfig gpt{100, 16, 2, 2, 32};
  EXPECT_EQ(nn::count_flops_per_sample(gpt), 2 * 16 * (2 * (12 * 32 * 32 + 2 * 16 * 32) + 32 * 100));
}

// count_parameters (from the config alone, for the memory check before building) matches the
// built model, for each kind and its options.
TEST(Zoo, CountParametersMatchesTheBuiltModel) {
  nn::MlpConfig mlp{/*inputs=*/12, /*hidden=*/{7, 5}, /*outputs=*/3};
  EXPECT_EQ(nn::count_parameters(mlp), nn::make_mlp(mlp)->num_parameters());
  nn::CnnConfig cnn;
  cnn.channels = {4, 6};
  cnn.hidden = {9};
  cnn.outputs = 10;
  EXPECT_EQ(nn::count_parameters(cnn), nn::make_cnn(cnn)->num_parameters());
  cnn.batch_norm = false, cnn.pool = "none", cnn.kernel = 5, cnn.hidden = {};
  cnn.height = 13, cnn.width = 9;
  EXPECT_EQ(nn::count_parameters(cnn), nn::make_cnn(cnn)->num_parameters());
  nn::GptConfig gpt{/*vocab=*/11, /*context=*/8, /*layers=*/2, /*heads=*/2, /*width=*/16};
  EXPECT_EQ(nn::count_parameters(gpt), nn::make_gpt(gpt)->num_parameters());
  gpt.tied_embeddings = false, gpt.bias = false;
  EXPECT_EQ(nn::count_parameters(gpt), nn::make_gpt(gpt)->num_parameters());
}

}  // namespace
}  // namespace frugal
