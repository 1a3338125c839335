// The sparse inference path of Linear (nn/sparse.h): a pruned MLP gives the dense path's outputs
// within f32 rounding whichever path each layer keeps (auto and forced), reports every layer, is
// refused when a gradient is needed, and the plan's end restores the dense layers.
#include <gtest/gtest.h>

#include <cmath>

#include "frugal/autograd/autograd.h"
#include "frugal/base/error.h"
#include "frugal/nn/layers.h"
#include "frugal/nn/sequential.h"
#include "frugal/nn/sparse.h"
#include "test_util.h"

namespace frugal {
namespace {
using testing::random_tensor;

// An MLP 784 -> 256 -> 128 -> 10 (ReLU between) with fc1 and fc2 pruned to `keep` of their weights
// by magnitude-free striding (every k-th weight kept); the head stays dense.
std::shared_ptr<nn::Sequential> pruned_mlp(double keep) {
  auto model = std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Linear>(784, 256), std::make_shared<nn::ReLU>(), std::make_shared<nn::Linear>(256, 128),
      std::make_shared<nn::ReLU>(), std::make_shared<nn::Linear>(128, 10)});
  const int64_t stride = int64_t(std::lround(1 / keep));
  for (const auto& [name, p] : model->named_parameters()) {
    if (name == "4.weight" || p.rank() != 2) continue;
    float* w = p.data<float>();
    for (int64_t i = 0; i < p.numel(); ++i)
      if (i % stride != 0) w[i] = 0;
  }
  return model;
}

double max_difference(const Tensor& a, const Tensor& b) {
  double worst = 0;
  for (int64_t i = 0; i < a.numel(); ++i)
    worst = std::max(worst, std::fabs(double(a.data<float>()[i]) - double(b.data<float>()[i])));
  return worst;
}

TEST(SparsePlan, SameOutputsAsDenseWhicheverPathIsKept) {
  auto model = pruned_mlp(0.1);
  autograd::NoGradGuard no_grad;
  for (int64_t batch : {1, 7, 100}) {
    const Tensor x = random_tensor({batch, 784}, 1 + uint64_t(batch));
    const Tensor dense = model->forward(x);
    for (nn::SparseMode mode : {nn::SparseMode::automatic, nn::SparseMode::on}) {
      nn::SparsePlan plan(*model, mode, 3);
      const Tensor first = model->forward(x), second = model->forward(x);  // deciding, then decided
      EXPECT_LE(max_difference(first, dense), 1e-5) << "batch " << batch << " mode " << nn::sparse_mode_name(mode);
      EXPECT_LE(max_difference(second, dense), 1e-5) << "batch " << batch;
      const std::vector<nn::SparseLayerReport> reports = plan.reports();
      ASSERT_EQ(reports.size(), 3u);
      EXPECT_EQ(reports[0].name, "0");
      EXPECT_NEAR(reports[0].density, 0.1, 0.001);
      EXPECT_EQ(reports[0].rows, batch);
      EXPECT_GT(reports[0].dense_us, 0);
      EXPECT_GT(reports[0].sparse_us, 0);
      if (mode == nn::SparseMode::on) {
        for (const auto& r : reports) EXPECT_TRUE(r.sparse) << r.name;
        EXPECT_EQ(reports[2].reason, "forced");
      } else {
        EXPECT_EQ(reports[0].sparse, reports[0].sparse_us < reports[0].dense_us);
        EXPECT_EQ(reports[2].name, "4");  // the dense head: above the cap, not timed
        EXPECT_EQ(reports[2].reason, "dense above cap");
        EXPECT_EQ(reports[2].dense_us, -1);
      }
      EXPECT_NE(nn::sparse_report_line(reports[0]).find("density 10.0%"), std::string::npos)
          << nn::sparse_report_line(reports[0]);
    }
  }
}

TEST(SparsePlan, OffArmsNothing) {
  auto model = pruned_mlp(0.1);
  nn::SparsePlan plan(*model, nn::SparseMode::off);
  EXPECT_TRUE(plan.reports().empty());
}

TEST(SparsePlan, RefusedWhenAGradientIsNeededAndDisarmedAfter) {
  auto model = pruned_mlp(0.1);
  const Tensor x = random_tensor({4, 784}, 3);
  {
    nn::SparsePlan plan(*model, nn::SparseMode::on);
    EXPECT_THROW(model->forward(x), InputError);  // grad mode on and the weights require grad
  }
  const Tensor y = model->forward(x);  // the plan ended: dense again, with a graph
  EXPECT_TRUE(y.requires_grad());
}

TEST(SparsePlan, ParsesModes) {
  EXPECT_EQ(nn::parse_sparse_mode("auto", "--sparse"), nn::SparseMode::automatic);
  EXPECT_EQ(nn::parse_sparse_mode("on", "--sparse"), nn::SparseMode::on);
  EXPECT_EQ(nn::parse_sparse_mode("off", "--sparse"), nn::SparseMode::off);
  EXPECT_THROW(nn::parse_sparse_mode("yes", "--sparse"), InputError);
}

}  // namespace
}  // namespace frugal
