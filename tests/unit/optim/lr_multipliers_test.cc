// Parameter groups split by learning-rate multiplier (param_groups_by_lr): without multipliers the
// default decay / no_decay groups exactly; the most specific matching pattern wins; equally specific
// patterns that disagree, and patterns that match nothing, are refused; the group's lr_scale is what
// the update uses.
#include <gtest/gtest.h>

#include "frugal/nn/zoo.h"
#include "frugal/optim/optimizer.h"
#include "test_util.h"

namespace frugal {
namespace {

// layers.1.weight (5, 6), layers.1.bias, layers.3.weight (3, 5), layers.3.bias.
std::shared_ptr<nn::Module> mlp() {
  nn::MlpConfig config;
  config.inputs = 6;
  config.hidden = {5};
  config.outputs = 3;
  return nn::make_mlp(config, 1);
}

std::vector<std::string> names_of(const nn::Module& model, const optim::ParamGroup& group) {
  std::vector<std::string> out;
  for (const Tensor& p : group.params)
    for (const auto& [name, q] : model.named_parameters())
      if (p.same(q)) out.push_back(name);
  return out;
}

TEST(LrMultipliers, NoneGivesTheDefaultGroupsExactly) {
  auto model = mlp();
  auto plain = optim::default_param_groups(*model, 0.01), split = optim::param_groups_by_lr(*model, 0.01, {});
  ASSERT_EQ(split.size(), plain.size());
  for (size_t g = 0; g < plain.size(); ++g) {
    EXPECT_EQ(split[g].name, plain[g].name);
    EXPECT_EQ(split[g].weight_decay, plain[g].weight_decay);
    EXPECT_EQ(split[g].lr_scale, 1.0);
    ASSERT_EQ(split[g].params.size(), plain[g].params.size());
    for (size_t i = 0; i < plain[g].params.size(); ++i) EXPECT_TRUE(split[g].params[i].same(plain[g].params[i]));
  }
}

TEST(LrMultipliers, GroupsSplitByMultiplierKeepingTheDecaySplit) {
  auto model = mlp();
  // "*" covers everything; "layers.3.*" is more specific and wins for the head.
  auto groups = optim::param_groups_by_lr(*model, 0.01, {{"*", 0.1}, {"layers.3.*", 1.0}});
  ASSERT_EQ(groups.size(), 4u);
  EXPECT_EQ(groups[0].name, "decay lr x0.1");
  EXPECT_EQ(names_of(*model, groups[0]), (std::vector<std::string>{"layers.1.weight"}));
  EXPECT_EQ(groups[0].lr_scale, 0.1);
  EXPECT_EQ(groups[0].weight_decay, 0.01);
  EXPECT_EQ(groups[1].name, "decay");
  EXPECT_EQ(names_of(*model, groups[1]), (std::vector<std::string>{"layers.3.weight"}));
  EXPECT_EQ(groups[1].lr_scale, 1.0);
  EXPECT_EQ(groups[2].name, "no_decay lr x0.1");
  EXPECT_EQ(names_of(*model, groups[2]), (std::vector<std::string>{"layers.1.bias"}));
  EXPECT_EQ(groups[2].weight_decay, 0.0);
  EXPECT_EQ(groups[3].name, "no_decay");
  EXPECT_EQ(names_of(*model, groups[3]), (std::vector<std::string>{"layers.3.bias"}));

  // Unmatched parameters keep x1, in the groups of x1.
  groups = optim::param_groups_by_lr(*model, 0.01, {{"layers.1.weight", 0.5}});
  ASSERT_EQ(groups.size(), 3u);
  EXPECT_EQ(names_of(*model, groups[0]), (std::vector<std::string>{"layers.1.weight"}));
  EXPECT_EQ(names_of(*model, groups[1]), (std::vector<std::string>{"layers.3.weight"}));
  EXPECT_EQ(names_of(*model, groups[2]), (std::vector<std::string>{"layers.1.bias", "layers.3.bias"}));
}

TEST(LrMultipliers, AmbiguousOrUselessPatternsAreRefused) {
  auto model = mlp();
  EXPECT_INPUT_ERROR(optim::param_groups_by_lr(*model, 0.01, {{"blocks.*", 0.1}}),
                     "lr multiplier pattern 'blocks.*' matches no parameter (the model's: layers.1.weight, layers.1.bias");
  // Both have 7 literal characters and match layers.1.weight with different multipliers.
  EXPECT_INPUT_ERROR(optim::param_groups_by_lr(*model, 0.01, {{"layers.*", 0.1}, {"*.weight", 0.2}}),
                     "'layers.*' = 0.1 and '*.weight' = 0.2 both match parameter 'layers.1.weight'",
                     "equally specific");
  // Equally specific but agreeing: fine.
  EXPECT_EQ(optim::param_groups_by_lr(*model, 0.01, {{"layers.*", 0.1}, {"*.weight", 0.1}}).size(), 2u);
  EXPECT_INPUT_ERROR(optim::param_groups_by_lr(*model, 0.01, {{"*", -1.0}}), "must be a finite number >= 0");
}

TEST(LrMultipliers, TheUpdateUsesTheGroupsScale) {
  auto model = mlp();
  auto groups = optim::param_groups_by_lr(*model, 0.0, {{"layers.1.*", 0.25}, {"layers.3.bias", 0.0}});
  optim::SGD sgd(groups, optim::SgdOptions{0.1});
  std::map<std::string, std::vector<float>> before;
  for (auto& [name, p] : model->named_parameters()) {
    before[name] = p.to_vector<float>();
    p.set_grad(Tensor::ones(p.shape()));
  }
  sgd.step();
  for (auto& [name, p] : model->named_parameters()) {
    const float step = name.rfind("layers.1.", 0) == 0 ? 0.1f * 0.25f : name == "layers.3.bias" ? 0.0f : 0.1f;
    std::vector<float> now = p.to_vector<float>();
    for (size_t i = 0; i < now.size(); ++i) EXPECT_FLOAT_EQ(now[i], before[name][i] - step) << name;
    if (name == "layers.3.bias") EXPECT_EQ(now, before[name]) << "x0: unchanged to the bit";
  }
}

}  // namespace
}  // namespace frugal
