// Initialization: PyTorch's bounds and standard deviations (checked on large tensors, so sample
// statistics are tight), gains and fans, and determinism of init_parameters.
#include <cmath>

#include <gtest/gtest.h>

#include "frugal/nn/nn.h"
#include "test_util.h"

namespace frugal {
namespace {
using testing::all_close;

struct Stats {
  double mean = 0, std = 0, max_abs = 0;
};
Stats stats(const Tensor& t) {
  std::vector<double> v = t.to_vector<double>();
  Stats s;
  for (double x : v) s.mean += x, s.max_abs = std::max(s.max_abs, std::fabs(x));
  s.mean /= double(v.size());
  for (double x : v) s.std += (x - s.mean) * (x - s.mean);
  s.std = std::sqrt(s.std / double(v.size()));
  return s;
}

TEST(Init, LinearAndConvUseOneOverSqrtFanIn) {
  nn::Linear linear(400, 300);
  const double bound = 1.0 / 20.0;
  Stats w = stats(linear.weight()), b = stats(linear.bias());
  EXPECT_LE(w.max_abs, bound);
  EXPECT_GT(w.max_abs, 0.99 * bound);                 // fills the whole interval
  EXPECT_NEAR(w.mean, 0.0, 5 * bound / std::sqrt(3 * 120000.0));  // 5 sigma of the sample mean
  EXPECT_NEAR(w.std, bound / std::sqrt(3.0), 0.01 * bound);        // U(-a, a) has std a / sqrt(3)
  EXPECT_LE(b.max_abs, bound);

  nn::Conv2d conv(16, 32, 3);  // fan_in = 16 * 3 * 3
  const double conv_bound = 1.0 / 12.0;
  Stats c = stats(conv.weight());
  EXPECT_LE(c.max_abs, conv_bound);
  EXPECT_NEAR(c.std, conv_bound / std::sqrt(3.0), 0.03 * conv_bound);
  EXPECT_LE(stats(conv.bias()).max_abs, conv_bound);
}

TEST(Init, EmbeddingIsStandardNormalNormsAreOnesAndZeros) {
  nn::Embedding embedding(1000, 64);
  Stats e = stats(embedding.weight());
  EXPECT_NEAR(e.mean, 0.0, 0.02);
  EXPECT_NEAR(e.std, 1.0, 0.02);
  nn::LayerNorm ln(5);
  for (double v : ln.weight().to_vector<double>()) EXPECT_EQ(v, 1.0);
  for (double v : ln.bias().to_vector<double>()) EXPECT_EQ(v, 0.0);
  nn::BatchNorm2d bn(3);
  for (double v : bn.weight().to_vector<double>()) EXPECT_EQ(v, 1.0);
  for (double v : bn.running_var().to_vector<double>()) EXPECT_EQ(v, 1.0);
}

TEST(Init, GainsAndFans) {
  EXPECT_DOUBLE_EQ(nn::init::calculate_gain("relu"), std::sqrt(2.0));
  EXPECT_DOUBLE_EQ(nn::init::calculate_gain("tanh"), 5.0 / 3.0);
  EXPECT_DOUBLE_EQ(nn::init::calculate_gain("conv2d"), 1.0);
  EXPECT_DOUBLE_EQ(nn::init::calculate_gain("leaky_relu", std::sqrt(5.0)), std::sqrt(1.0 / 3.0));
  EXPECT_THROW(nn::init::calculate_gain("swish"), InputError);
  auto [fan_in, fan_out] = nn::init::fan_in_and_fan_out(Tensor::zeros({8, 4, 3, 2}));
  EXPECT_EQ(fan_in, 4 * 6);
  EXPECT_EQ(fan_out, 8 * 6);
}

TEST(Init, KaimingAndXavierRules) {
  Rng rng(1, 0, RandomPurpose::test);
  Tensor t = Tensor::empty({256, 512});  // fan_in 512, fan_out 256
  nn::init::kaiming_normal_(t, rng, 0, "fan_in", "relu");
  EXPECT_NEAR(stats(t).std, std::sqrt(2.0 / 512), 0.01 * std::sqrt(2.0 / 512));
  nn::init::kaiming_uniform_(t, rng, 0, "fan_out", "relu");
  EXPECT_LE(stats(t).max_abs, std::sqrt(2.0) * std::sqrt(3.0 / 256));
  EXPECT_NEAR(stats(t).std, std::sqrt(2.0 / 256), 0.01 * std::sqrt(2.0 / 256));
  nn::init::xavier_uniform_(t, rng, 2.0);
  const double xavier_bound = 2.0 * std::sqrt(6.0 / 768);
  EXPECT_LE(stats(t).max_abs, xavier_bound);
  EXPECT_GT(stats(t).max_abs, 0.99 * xavier_bound);
  nn::init::xavier_normal_(t, rng);
  EXPECT_NEAR(stats(t).std, std::sqrt(2.0 / 768), 0.01 * std::sqrt(2.0 / 768));
  nn::init::zeros_(t);
  EXPECT_EQ(stats(t).max_abs, 0.0);
  Tensor d = Tensor::empty({3, 3}, DType::f64);  // non-f32 tensors take the generic path
  nn::init::uniform_(d, 2.0, 3.0, rng);
  for (double v : d.to_vector<double>()) EXPECT_TRUE(v >= 2.0 && v < 3.0);
  EXPECT_THROW(nn::init::kaiming_normal_(t, rng, 0, "fan_sideways"), InputError);
}

TEST(Init, SameSeedSameWeightsOtherSeedOtherWeights) {
  auto model = nn::make_mlp({8, {16, 16}, 4});
  auto same = nn::make_mlp({8, {16, 16}, 4});
  nn::init_parameters(*model, 42);
  nn::init_parameters(*same, 42);
  auto a = model->state_dict(), b = same->state_dict();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(all_close(a[i].second, b[i].second, 0, 0)) << a[i].first;
  nn::init_parameters(*same, 43);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_FALSE(all_close(a[i].second, same->state_dict()[i].second, 0, 0));
  // Re-initializing with the first seed gives the first weights back.
  nn::init_parameters(*same, 42);
  EXPECT_TRUE(all_close(same->state_dict()[0].second, a[0].second, 0, 0));
}

TEST(Init, EachParameterHasItsOwnStream) {
  // A parameter's values depend on its index, not on the shapes of the others.
  auto small = nn::make_mlp({8, {16}, 4}, 5), deep = nn::make_mlp({8, {16, 32, 64}, 4}, 5);
  EXPECT_TRUE(all_close(small->named_parameters()[0].second, deep->named_parameters()[0].second, 0, 0));
  EXPECT_TRUE(all_close(small->named_parameters()[1].second, deep->named_parameters()[1].second, 0, 0));
  // Weight and bias of one layer have the same bound (1/sqrt(8)) but not the same stream.
  auto w = small->named_parameters()[0].second.to_vector<double>();
  auto b = small->named_parameters()[1].second.to_vector<double>();
  EXPECT_NE(w[0], b[0]);
}

}  // namespace
}  // namespace frugal
