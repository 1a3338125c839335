// Every LR schedule against values from PyTorch's schedulers (torch 1.13, recorded by stepping an
// SGD optimizer and reading param_groups[0]['lr'] before each step), with the formula beside them.
#include <cmath>
#include <numbers>

#include <gtest/gtest.h>

#include "frugal/optim/schedule.h"

namespace frugal {
namespace {

void expect_lrs(const optim::LrSchedule& schedule, const std::vector<double>& expected) {
  for (size_t s = 0; s < expected.size(); ++s)
    EXPECT_NEAR(schedule.lr_at(int64_t(s)), expected[s], 1e-12 + 1e-12 * expected[s]) << "step " << s;
}

TEST(Schedule, ConstantStepExponential) {
  expect_lrs(optim::ConstantSchedule(0.3), {0.3, 0.3, 0.3});
  // StepLR(step_size 3, gamma 0.5): 0.1 * 0.5^floor(s / 3)
  expect_lrs(optim::StepSchedule(0.1, 3, 0.5), {0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025});
  // ExponentialLR(gamma 0.9): 0.1 * 0.9^s
  expect_lrs(optim::ExponentialSchedule(0.1, 0.9), {0.1, 0.09, 0.081, 0.0729, 0.06561});
}

TEST(Schedule, WarmupCosineMatchesSequentialLinearCosine) {
  // SequentialLR(LinearLR(start 1/4, total_iters 4), CosineAnnealingLR(T_max 8, eta_min 0.01), milestones [4]):
  //   s < 4: 0.1 * (1/4 + 3/4 * s/4);  4 <= s < 12: 0.01 + 0.09 * (1 + cos(pi (s - 4) / 8)) / 2
  expect_lrs(optim::WarmupDecaySchedule(0.1, 4, 12, 0.01),
             {0.025, 0.043750000000000004, 0.06250000000000001, 0.08125000000000002, 0.1, 0.0965745789630079,
              0.08681980515339463, 0.07222075445642905, 0.055, 0.03777924554357096, 0.023180194846605363,
              0.013425421036992097, 0.01});
  // Past total_steps the lr stays at lr_min (PyTorch's cosine would rise again).
  EXPECT_EQ(optim::WarmupDecaySchedule(0.1, 4, 12, 0.01).lr_at(20), 0.01);
  // No warmup: plain CosineAnnealingLR(T_max 10): 0.5 * (1 + cos(pi s / 10)) * 0.2 at s = 5 -> 0.1
  EXPECT_NEAR(optim::WarmupDecaySchedule(0.2, 0, 10).lr_at(5), 0.1, 1e-15);
  // Linear decay: 0.1 + (0.01 - 0.1) * (s - 4) / 8 -> at s = 8: 0.055
  optim::WarmupDecaySchedule linear(0.1, 4, 12, 0.01, optim::WarmupDecaySchedule::Decay::linear);
  EXPECT_NEAR(linear.lr_at(8), 0.055, 1e-15);
  EXPECT_NEAR(linear.lr_at(2), 0.0625, 1e-15);
  EXPECT_THROW(optim::WarmupDecaySchedule(0.1, 10, 10), InputError);
}

TEST(Schedule, CosineWarmRestarts) {
  // CosineAnnealingWarmRestarts(T_0 3, T_mult 2, eta_min 0.001): cycles of 3, 6, 12 steps;
  //   0.001 + 0.099 * (1 + cos(pi t / T_i)) / 2 with t the steps into the cycle.
  expect_lrs(optim::CosineRestartsSchedule(0.1, 3, 2, 0.001),
             {0.1, 0.07525000000000001, 0.025750000000000012, 0.1, 0.09336825748732973, 0.07525000000000001, 0.0505,
              0.025750000000000012, 0.007631742512670284, 0.1, 0.09831332840130888, 0.09336825748732973});
  // T_mult 1: period 4.
  expect_lrs(optim::CosineRestartsSchedule(0.1, 4, 1, 0.0),
             {0.1, 0.08535533905932738, 0.05, 0.014644660940672627, 0.1, 0.08535533905932738, 0.05,
              0.014644660940672627, 0.1});
}

TEST(Schedule, OneCycle) {
  // OneCycleLR(max_lr 1, total 10, pct_start 0.3, div 25, final_div 1e4, cos): initial 0.04, final 4e-6,
  //   phase 1 ends at 0.3 * 10 - 1 = 2: cos_anneal(0.04, 1, s / 2); then cos_anneal(1, 4e-6, (s - 2) / 7).
  expect_lrs(optim::OneCycleSchedule(1.0, 10),
             {0.040000000000000036, 0.52, 1.0, 0.9504846320134737, 0.8117456539497631, 0.6112620219362893,
              0.38874197806371075, 0.18825834605023697, 0.049519367986526286, 4e-06});
  EXPECT_NEAR(optim::OneCycleSchedule(1.0, 10).lr_at(50), 4e-6, 1e-18);
  EXPECT_THROW(optim::OneCycleSchedule(1.0, 3, 0.3), InputError);  // 0.3 * 3 - 1 < 0: no warmup phase
}

TEST(Schedule, ReduceOnPlateau) {
  // ReduceLROnPlateau(min, factor 0.5, patience 2, threshold 1e-4 rel, cooldown 1, min_lr 0.02);
  // the lr before each step, observing metric[s] after step s.
  const std::vector<double> metrics = {1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.8, 0.85, 0.85, 0.85, 0.85, 0.85};
  const std::vector<double> expected = {0.1, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05, 0.025, 0.025};
  optim::PlateauOptions options;
  options.factor = 0.5, options.patience = 2, options.cooldown = 1, options.min_lr = 0.02;
  optim::PlateauSchedule plateau(0.1, options);
  for (size_t s = 0; s < metrics.size(); ++s) {
    EXPECT_DOUBLE_EQ(plateau.lr_at(int64_t(s)), expected[s]) << "step " << s;
    plateau.observe(metrics[s]);
  }
  // Further bad epochs reduce to min_lr and stop there.
  for (int i = 0; i < 20; ++i) plateau.observe(1.0);
  EXPECT_DOUBLE_EQ(plateau.lr_at(0), 0.02);
}

TEST(Schedule, PlateauMaxModeAndStateRoundTrip) {
  optim::PlateauOptions options;
  options.mode = "max", options.patience = 1, options.threshold_mode = "abs", options.threshold = 0.01;
  optim::PlateauSchedule a(1.0, options);
  a.observe(0.5);
  a.observe(0.505);  // not better by more than 0.01: one bad epoch
  optim::PlateauSchedule b(1.0, options);
  b.load_state(a.state());
  for (auto* s : {&a, &b}) s->observe(0.5);  // second bad epoch > patience: reduce
  EXPECT_DOUBLE_EQ(a.lr_at(0), 0.1);
  EXPECT_DOUBLE_EQ(b.lr_at(0), 0.1);
  EXPECT_THROW(b.load_state({{"bogus", Tensor::scalar(1.0, DType::f64)}}), InputError);
  EXPECT_THROW(optim::PlateauSchedule(1.0, optim::PlateauOptions{"median"}), InputError);
}

TEST(Schedule, MakeScheduleFromConfig) {
  optim::ScheduleConfig config;
  config.kind = "warmup_cosine", config.lr = 0.1, config.warmup_steps = 4, config.total_steps = 12,
  config.lr_min = 0.01;
  EXPECT_NEAR(optim::make_schedule(config)->lr_at(6), 0.08681980515339463, 1e-15);
  config.kind = "one_cycle", config.lr = 1.0, config.total_steps = 10;
  EXPECT_NEAR(optim::make_schedule(config)->lr_at(1), 0.52, 1e-15);
  config.kind = "cosine_restarts", config.lr = 0.1, config.t_0 = 4, config.lr_min = 0.0;
  EXPECT_NEAR(optim::make_schedule(config)->lr_at(5), 0.08535533905932738, 1e-15);
  config.kind = "sawtooth";
  try {
    optim::make_schedule(config);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("schedule.kind"), std::string::npos);
  }
  EXPECT_TRUE(optim::make_schedule(config = optim::ScheduleConfig{})->state().empty());
}

}  // namespace
}  // namespace frugal
