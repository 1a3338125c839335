// make_builtin_techniques: which job keys switch which technique on (logging, the non-finite
// guard, preemption and checkpointing always), --budget-usd replacing [budget] max_usd, and a bad
// budget limit or loss-scaling option refused as an InputError before anything is written.
#include <filesystem>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "frugal/base/error.h"
#include "frugal/train/techniques/builtin.h"
#include "test_util.h"
#include "unit/train/technique_harness.h"

namespace frugal::train {
namespace {

using testing::RunFixture;
using testing::TechniqueHarness;

const char* kSections = "[model]\nkind = \"mlp\"\nhidden = [8]\n[train]\nepochs = 1\nbatch_size = 16\n";

std::vector<std::string> names(const std::vector<std::unique_ptr<Technique>>& techniques) {
  std::vector<std::string> out;
  for (const auto& t : techniques) out.push_back(t->name());
  return out;
}

std::vector<std::string> switched_on(const RunFixture& f, const std::vector<std::string>& overrides,
                                     std::optional<double> budget_usd = std::nullopt) {
  return names(make_builtin_techniques(f.job(overrides), budget_usd));
}

using Names = std::vector<std::string>;

TEST(BuiltinTechniques, EachJobKeySwitchesItsTechniqueOn) {
  RunFixture f("builtin-keys", 40, kSections);
  const Names always = {"logging", "nonfinite_guard", "preemption", "checkpointing"};
  EXPECT_EQ(switched_on(f, {}), always);
  EXPECT_EQ(switched_on(f, {"checkpoint.enabled=false"}), always) << "a signal still writes a checkpoint";
  EXPECT_EQ(switched_on(f, {"precision.mode=\"fp16-mixed\""}), (Names{"logging", "loss_scaler", "nonfinite_guard", "preemption", "checkpointing"}));
  EXPECT_EQ(switched_on(f, {"train.clip_norm=1.0"}), (Names{"logging", "clip", "nonfinite_guard", "preemption", "checkpointing"}));
  EXPECT_EQ(switched_on(f, {"train.early_stopping.patience=2"}),
            (Names{"logging", "early_stopping", "nonfinite_guard", "preemption", "checkpointing"}));
  EXPECT_EQ(switched_on(f, {"train.early_stopping.enabled=false"}), always);
  EXPECT_EQ(switched_on(f, {"train.max_minutes=5.0"}), (Names{"logging", "time_limit", "nonfinite_guard", "preemption", "checkpointing"}));
  for (const char* limit : {"budget.max_usd=1.0", "budget.max_kwh=1.0", "budget.max_co2_kg=1.0", "budget.max_hours=1.0"})
    EXPECT_EQ(switched_on(f, {limit}), (Names{"logging", "budget", "nonfinite_guard", "preemption", "checkpointing"})) << limit;
  EXPECT_EQ(switched_on(f, {}, 2.5), (Names{"logging", "budget", "nonfinite_guard", "preemption", "checkpointing"})) << "--budget-usd";
  EXPECT_EQ(switched_on(f, {"precision.mode=\"fp16-mixed\"", "train.clip_norm=1.0", "train.early_stopping.patience=2",
                            "train.max_minutes=5.0", "budget.max_hours=1.0"}),
            (Names{"logging", "loss_scaler", "clip", "early_stopping", "time_limit", "budget", "nonfinite_guard", "preemption",
                   "checkpointing"}));
  // The loop orders them by order(): the loss scaler unscales before clipping reads the gradients,
  // checkpoint triggers act after every other technique of the step.
  std::map<std::string, int> order;
  for (const auto& t : make_builtin_techniques(f.job({"precision.mode=\"fp16-mixed\"", "train.clip_norm=1.0"}), 1.0))
    order[t->name()] = t->order();
  EXPECT_LT(order.at("loss_scaler"), order.at("clip"));
  EXPECT_LT(order.at("clip"), order.at("nonfinite_guard")) << "the guard reads clipping's gradient norm";
  for (const auto& [name, position] : order) EXPECT_LE(position, order.at("checkpointing")) << name;
}

TEST(BuiltinTechniques, BudgetUsdReplacesMaxUsdAndKeepsTheOtherLimits) {
  TechniqueHarness h(std::string(testing::kHarnessSections) + "[budget]\nmax_usd = 10.0\nmax_kwh = 2.0\n");
  auto budget_of = [&](std::optional<double> budget_usd) {
    for (auto& t : make_builtin_techniques(h.job, budget_usd))
      if (t->name() == "budget") return h.end_run(*t).budget;
    return std::optional<BudgetSummary>();
  };
  std::optional<BudgetSummary> from_job = budget_of(std::nullopt), from_flag = budget_of(5.0);
  ASSERT_TRUE(from_job && from_flag);
  EXPECT_EQ(from_job->max_usd, std::optional<double>(10.0));
  EXPECT_EQ(from_flag->max_usd, std::optional<double>(5.0));
  EXPECT_EQ(from_flag->max_kwh, std::optional<double>(2.0));
  EXPECT_EQ(from_flag->max_hours, std::nullopt);
}

TEST(BuiltinTechniques, ABadBudgetLimitOrLossScalingOptionIsAnInputError) {
  RunFixture f("builtin-errors", 40, kSections);
  const JobSpec job = f.job();
  for (double bad : {0.0, -1.0, std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()})
    EXPECT_INPUT_ERROR(make_builtin_techniques(job, bad), "max_usd", "expected a number > 0");
  JobSpec limits = job;
  limits.budget.max_kwh = -2.0;  // as load_job never makes it: the techniques check again
  EXPECT_INPUT_ERROR(make_builtin_techniques(limits, std::nullopt), "max_kwh");

  const JobSpec fp16 = f.job({"precision.mode=\"fp16-mixed\""});
  JobSpec backoff = fp16;
  backoff.precision.loss_scale_backoff_factor = 1.0;
  EXPECT_INPUT_ERROR(make_builtin_techniques(backoff, std::nullopt), "backoff_factor");
  JobSpec init = fp16;
  init.precision.loss_scale_init = std::numeric_limits<double>::infinity();
  EXPECT_INPUT_ERROR(make_builtin_techniques(init, std::nullopt), "init_scale");
  JobSpec growth = fp16;
  growth.precision.loss_scale_growth_interval = 0;
  EXPECT_INPUT_ERROR(make_builtin_techniques(growth, std::nullopt), "growth_interval");
  // Without fp16-mixed the loss-scaling options are not used.
  JobSpec fp32 = job;
  fp32.precision.loss_scale_backoff_factor = 1.0;
  EXPECT_NO_THROW(make_builtin_techniques(fp32, std::nullopt));
}

// Through Trainer: the bad --budget-usd is refused before the run directory or the store exist.
TEST(BuiltinTechniques, ABadBudgetIsRefusedBeforeAnythingIsWritten) {
  RunFixture f("builtin-nothing-written", 40, kSections);
  TrainOptions options = f.options("run");
  options.budget_usd = -1.0;
  EXPECT_INPUT_ERROR(Trainer(f.job(), options).run(), "max_usd");
  EXPECT_FALSE(std::filesystem::exists(f.dir() / "run"));
  EXPECT_FALSE(std::filesystem::exists(f.dir() / "runs.db"));
}

}  // namespace
}  // namespace frugal::train
