// train/limits.h: the model memory estimate (parameters, gradients, optimizer state, activations)
// by optimizer and mode, its refusal naming the figures, and the thread cap with and without force.
#include "frugal/train/limits.h"

#include <gtest/gtest.h>

#include "frugal/base/machine.h"
#include "test_util.h"

namespace frugal::train {
namespace {

ModelPlan mlp_plan(std::vector<int64_t> hidden) {
  ModelPlan plan;
  plan.config = nn::MlpConfig{/*inputs=*/4, hidden, /*outputs=*/3};
  return plan;
}

TEST(Limits, ModelMemoryByOptimizerAndMode) {
  JobSpec job;
  job.train.batch_size = 10;
  const ModelPlan plan = mlp_plan({5});
  const int64_t params = 4 * 5 + 5 + 5 * 3 + 3;  // 43
  job.optim.kind = OptimKind::adamw;
  ModelMemory m = estimate_model_memory(job, plan, /*training=*/true);
  EXPECT_EQ(m.parameters, params);
  EXPECT_EQ(m.weight_bytes, 4 * params);
  EXPECT_EQ(m.gradient_bytes, 4 * params);
  EXPECT_EQ(m.optimizer_bytes, 8 * params);
  EXPECT_EQ(m.activation_bytes, 10 * (4 + 2 * 5 + 3) * 4);
  job.optim.kind = OptimKind::sgd;
  EXPECT_EQ(estimate_model_memory(job, plan, true).optimizer_bytes, 0);
  job.optim.momentum = 0.9;
  EXPECT_EQ(estimate_model_memory(job, plan, true).optimizer_bytes, 4 * params);
  job.lora.enabled = true;  // base weights frozen: no gradient, no state
  EXPECT_EQ(estimate_model_memory(job, plan, true).gradient_bytes, 0);
  m = estimate_model_memory(job, plan, /*training=*/false);
  EXPECT_EQ(m.total(), 4 * params);
  EXPECT_EQ(estimate_model_memory(job, ModelPlan{}, true).total(), 0) << "custom models are not estimated";
}

TEST(Limits, ModelMemoryRefusedWithTheFigures) {
  JobSpec job;
  job.path = "job.toml";
  job.optim.kind = OptimKind::adamw;
  EXPECT_NO_THROW(check_model_memory(job, mlp_plan({64}), true));
  const ModelPlan huge = mlp_plan({1 << 20, 1 << 20});
  EXPECT_INPUT_ERROR(check_model_memory(job, huge, true), "job.toml: [model] needs ~16.0 TiB for parameters, gradients and Adam state",
                     "this machine has " + bytes_text(machine_memory().available).substr(0, 2));
  EXPECT_INPUT_ERROR(check_model_memory(job, huge, false), "needs ~4.0 TiB for parameters (");
}

TEST(Limits, ThreadsCappedUnlessForced) {
  JobSpec job;
  job.path = "job.toml";
  const int cores = available_cores();
  std::string warning;
  job.run.threads = 0;
  EXPECT_EQ(capped_threads(job, &warning), 0);
  EXPECT_EQ(warning, "");
  job.run.threads = cores;
  EXPECT_EQ(capped_threads(job, &warning), cores);
  EXPECT_EQ(warning, "");
  job.run.threads = cores + 7;
  EXPECT_EQ(capped_threads(job, &warning), cores);
  EXPECT_NE(warning.find("[run] threads = " + std::to_string(cores + 7) + " is more than the " + std::to_string(cores) +
                         " cores available"), std::string::npos) << warning;
  job.run.threads_force = true;
  EXPECT_EQ(capped_threads(job, &warning), cores + 7);
  EXPECT_EQ(warning, "");
}

}  // namespace
}  // namespace frugal::train
