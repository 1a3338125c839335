// MetricLogging on its own (technique_harness.h): "train" rows every log_every steps and at the last
// with the mean of the finite losses since the previous row, "eval" rows and lines with only the
// metrics the evaluation has, the summary's train_loss, and its state through a checkpoint.
#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "frugal/base/error.h"
#include "frugal/train/techniques/builtin.h"
#include "test_util.h"
#include "unit/train/technique_harness.h"

namespace frugal::train {
namespace {

using testing::TechniqueHarness;

constexpr double kInf = std::numeric_limits<double>::infinity();

// One optimizer step as the loop drives logging: a micro-batch of 4 samples per loss, then the step.
void train_step(TechniqueHarness& h, MetricLogging& logging, int64_t step, const std::vector<double>& losses) {
  h.state.batch.inputs = Tensor::zeros({4, 16});
  for (double loss : losses) {
    h.state.loss_value = loss;
    logging.on(Event::after_backward, h.state);
  }
  h.state.step = step;
  logging.on(Event::after_optimizer_step, h.state);
}

TEST(MetricLogging, ATrainRowEveryLogEveryStepsAndAtTheLastWithTheWindowsFiniteMean) {
  TechniqueHarness h;  // log_every = 3
  h.state.total_steps = 7;
  h.optimizer->set_lr(0.125);
  MetricLogging logging;
  train_step(h, logging, 1, {1.0, 2.0});
  train_step(h, logging, 2, {3.0});
  train_step(h, logging, 3, {NAN, 4.0});  // a skipped fp16 step's loss stays out of the mean
  train_step(h, logging, 4, {kInf});
  train_step(h, logging, 5, {5.0});
  train_step(h, logging, 6, {7.0});
  h.state.epoch = 1;
  train_step(h, logging, 7, {0.5});

  std::vector<nlohmann::json> rows = h.rows_of_kind("train");
  ASSERT_EQ(rows.size(), 3u) << h.rows().size();
  EXPECT_EQ(h.rows().size(), 3u);
  const int64_t steps[] = {3, 6, 7};
  const double losses[] = {2.5, 6.0, 0.5};
  const int64_t epochs[] = {0, 0, 1};
  for (size_t i = 0; i < 3; ++i) {
    SCOPED_TRACE(rows[i].dump());
    EXPECT_EQ(rows[i].at("step").get<int64_t>(), steps[i]);
    EXPECT_EQ(rows[i].at("loss").get<double>(), losses[i]);
    EXPECT_EQ(rows[i].at("lr").get<double>(), 0.125);
    EXPECT_EQ(rows[i].at("epoch").get<int64_t>(), epochs[i]);
    EXPECT_TRUE(rows[i].contains("samples_per_s"));
    EXPECT_TRUE(rows[i].contains("time_s"));
    EXPECT_FALSE(rows[i].contains("tokens_per_s"));  // classification
  }
  // The run store gets the train rows too (MetricsLog).
  EXPECT_EQ(h.store.metrics(h.run_id).size(), 3u);
}

TEST(MetricLogging, AWindowWithoutAFiniteLossRepeatsThePreviousMeanAndNoneBeforeIsNull) {
  TechniqueHarness h;  // log_every = 3
  MetricLogging logging;
  train_step(h, logging, 1, {NAN});
  train_step(h, logging, 2, {kInf});
  train_step(h, logging, 3, {NAN});
  train_step(h, logging, 4, {2.0});
  train_step(h, logging, 5, {});
  train_step(h, logging, 6, {4.0});
  train_step(h, logging, 7, {NAN});
  train_step(h, logging, 8, {});
  train_step(h, logging, 9, {NAN});
  std::vector<nlohmann::json> rows = h.rows_of_kind("train");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_TRUE(rows[0].at("loss").is_null()) << rows[0].dump();  // NaN: nothing logged yet
  EXPECT_EQ(rows[1].at("loss").get<double>(), 3.0);
  EXPECT_EQ(rows[2].at("loss").get<double>(), 3.0);
}

TEST(MetricLogging, AnEvalRowAndLineWithOnlyTheMetricsTheEvaluationHas) {
  TechniqueHarness h;
  MetricLogging logging;
  h.state.step = 3;
  h.state.eval = EvalMetrics{0.5, 0.75, -1, 10};  // classification
  logging.on(Event::evaluation_done, h.state);
  h.state.step = 6;
  h.state.epoch = 1;
  h.state.eval = EvalMetrics{1.25, -1, 1.8, 10};  // text
  logging.on(Event::evaluation_done, h.state);

  std::vector<nlohmann::json> rows = h.rows();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].at("kind"), "eval");
  EXPECT_EQ(rows[0].at("step").get<int64_t>(), 3);
  EXPECT_EQ(rows[0].at("epoch").get<int64_t>(), 0);
  EXPECT_EQ(rows[0].at("val_loss").get<double>(), 0.5);
  EXPECT_EQ(rows[0].at("val_accuracy").get<double>(), 0.75);
  EXPECT_FALSE(rows[0].contains("val_bits_per_char")) << rows[0].dump();
  EXPECT_TRUE(rows[0].contains("time_s"));
  EXPECT_EQ(rows[1].at("kind"), "eval");
  EXPECT_EQ(rows[1].at("step").get<int64_t>(), 6);
  EXPECT_EQ(rows[1].at("epoch").get<int64_t>(), 1);
  EXPECT_EQ(rows[1].at("val_loss").get<double>(), 1.25);
  EXPECT_EQ(rows[1].at("val_bits_per_char").get<double>(), 1.8);
  EXPECT_FALSE(rows[1].contains("val_accuracy")) << rows[1].dump();

  std::vector<std::string> lines = h.lines_starting("eval ");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "eval step 3: val_loss 0.5000, val_accuracy 75.00%");
  EXPECT_EQ(lines[1], "eval step 6: val_loss 1.2500, val_bits_per_char 1.800");
}

TEST(MetricLogging, TheSummarysTrainLossIsTheLastRowsMeanAndNaNBeforeAnyRow) {
  TechniqueHarness h;  // log_every = 3
  MetricLogging logging;
  EXPECT_TRUE(std::isnan(h.end_run(logging).metrics.train_loss));
  train_step(h, logging, 1, {1.0});
  train_step(h, logging, 2, {2.0});
  EXPECT_TRUE(std::isnan(h.end_run(logging).metrics.train_loss)) << "no row yet: the window is not the summary";
  train_step(h, logging, 3, {6.0});
  EXPECT_EQ(h.end_run(logging).metrics.train_loss, 3.0);
  train_step(h, logging, 4, {100.0});  // a window not yet logged
  EXPECT_EQ(h.end_run(logging).metrics.train_loss, 3.0);
}

TEST(MetricLogging, StateRoundTripsBitExactlyAndTheResumedWindowGoesOn) {
  TechniqueHarness h;  // log_every = 3
  MetricLogging logging;
  train_step(h, logging, 1, {0.1, 0.2});
  train_step(h, logging, 2, {0.3});
  train_step(h, logging, 3, {1.0 / 3.0});
  train_step(h, logging, 4, {0.7, NAN});
  train_step(h, logging, 5, {1.0 / 7.0});
  TechniqueState saved("logging", "ckpt-5");
  logging.save_state(saved);
  EXPECT_EQ(saved.integer("loss_window_count"), 2);
  EXPECT_EQ(saved.real("loss_window"), 0.7 + 1.0 / 7.0);
  EXPECT_EQ(saved.real("last_train_loss"), (0.1 + 0.2 + 0.3 + 1.0 / 3.0) / 4.0);

  MetricLogging resumed;
  resumed.load_state(saved);
  TechniqueState again("logging", "ckpt-5");
  resumed.save_state(again);
  EXPECT_EQ(again.values(), saved.values());
  EXPECT_EQ(h.end_run(resumed).metrics.train_loss, h.end_run(logging).metrics.train_loss);

  // Both go on to the row of step 6 with the same window.
  train_step(h, logging, 6, {0.9});
  train_step(h, resumed, 6, {0.9});
  std::vector<nlohmann::json> rows = h.rows_of_kind("train");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[1].at("loss").get<double>(), (0.7 + 1.0 / 7.0 + 0.9) / 3.0);
  EXPECT_EQ(rows[2].at("loss").get<double>(), rows[1].at("loss").get<double>());

  // Before any row: NaN goes through the checkpoint too.
  MetricLogging fresh, fresh_resumed;
  TechniqueState nan_state("logging", "ckpt-0");
  fresh.save_state(nan_state);
  fresh_resumed.load_state(nan_state);
  EXPECT_TRUE(std::isnan(h.end_run(fresh_resumed).metrics.train_loss));
}

TEST(MetricLogging, LoadingAnEmptyStateIsAnInputErrorNamingTheCheckpointAndTheTechnique) {
  MetricLogging logging;
  EXPECT_INPUT_ERROR(logging.load_state(TechniqueState("logging", "runs/x/checkpoints/checkpoint-5.fck")),
                     "checkpoint-5.fck", "technique 'logging'");
}

}  // namespace
}  // namespace frugal::train
