// EarlyStopping on its own (technique_harness.h): which metric it watches and in which direction,
// `patience` evaluations without an improvement of more than min_delta tolerated and the next one
// stopping the run (completed, early_stopping), the best weights kept as copies and restored at
// fit_end only with restore_best, best_step in the summary of a run that ended, and its state
// (best weights included) through a checkpoint. Limits: patience here is PyTorch's plateau meaning
// (evaluations without improvement tolerated), which is what the code has done since it was written.
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "frugal/base/error.h"
#include "frugal/train/techniques/builtin.h"
#include "test_util.h"
#include "unit/train/technique_harness.h"

namespace frugal::train {
namespace {

using testing::TechniqueHarness;

EarlyStopSpec spec(EarlyStopMetric metric, MetricMode mode, int64_t patience, double min_delta = 0,
                   bool restore_best = true) {
  EarlyStopSpec s;
  s.enabled = true;
  s.metric = metric;
  s.mode = mode;
  s.patience = patience;
  s.min_delta = min_delta;
  s.restore_best = restore_best;
  return s;
}

// evaluation_done at `step` with the watched metric = value and the other two at `others`.
void evaluate(TechniqueHarness& h, EarlyStopping& stopping, EarlyStopMetric metric, int64_t step, double value,
              double others = 0.5) {
  h.state.step = step;
  h.state.eval = EvalMetrics{others, others, others, 10};
  if (metric == EarlyStopMetric::val_loss) h.state.eval.loss = value;
  if (metric == EarlyStopMetric::val_accuracy) h.state.eval.accuracy = value;
  if (metric == EarlyStopMetric::val_bits_per_char) h.state.eval.bits_per_char = value;
  stopping.on(Event::evaluation_done, h.state);
}

// The evaluation (1-based) at which a run of `values` is stopped; 0 when it is not.
int64_t stopped_at(TechniqueHarness& h, EarlyStopMetric metric, MetricMode mode, int64_t patience, double min_delta,
                   const std::vector<double>& values) {
  h.state.stop.reset();
  EarlyStopping stopping(spec(metric, mode, patience, min_delta));
  for (size_t i = 0; i < values.size(); ++i) {
    evaluate(h, stopping, metric, int64_t(i + 1) * 2, values[i]);
    if (h.state.stop) {
      EXPECT_EQ(h.state.stop->status, "completed");
      EXPECT_EQ(h.state.stop->reason, "early_stopping");
      EXPECT_EQ(h.state.stop->exit_code, 0);
      EXPECT_FALSE(h.state.stop->checkpoint);
      EXPECT_EQ(h.state.step, int64_t(i + 1) * 2);
      return int64_t(i + 1);
    }
  }
  return 0;
}

std::vector<double> mirrored(const std::vector<double>& values) {
  std::vector<double> out;
  for (double v : values) out.push_back(1.0 - v);
  return out;
}

TEST(EarlyStopping, WatchesItsMetricInItsDirection) {
  TechniqueHarness h;
  // min: better at 2 and 4; 5 and 6 are not. With patience 1 the second of them stops the run.
  // Read in the other direction it would stop at 3; reading the other metrics (constant) at 3 too.
  const std::vector<double> lower = {1.0, 0.8, 0.9, 0.7, 0.75, 0.75};
  const struct {
    EarlyStopMetric metric;
    MetricMode mode;
  } cases[] = {{EarlyStopMetric::val_loss, MetricMode::min},          {EarlyStopMetric::val_loss, MetricMode::max},
               {EarlyStopMetric::val_accuracy, MetricMode::max},      {EarlyStopMetric::val_accuracy, MetricMode::min},
               {EarlyStopMetric::val_bits_per_char, MetricMode::min}, {EarlyStopMetric::val_bits_per_char, MetricMode::max}};
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(name_of(c.metric)) + " " + name_of(c.mode));
    const std::vector<double> values = c.mode == MetricMode::min ? lower : mirrored(lower);
    EXPECT_EQ(stopped_at(h, c.metric, c.mode, 1, 0, values), 6);
    EXPECT_EQ(stopped_at(h, c.metric, c.mode, 1, 0, std::vector<double>(values.begin(), values.end() - 1)), 0);
  }
}

TEST(EarlyStopping, PatienceEvaluationsWithoutImprovementAreToleratedAndTheNextStops) {
  TechniqueHarness h;
  const std::vector<double> flat = {1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0};
  EXPECT_EQ(stopped_at(h, EarlyStopMetric::val_loss, MetricMode::min, 0, 0, flat), 2);
  EXPECT_EQ(stopped_at(h, EarlyStopMetric::val_loss, MetricMode::min, 1, 0, flat), 3);
  EXPECT_EQ(stopped_at(h, EarlyStopMetric::val_loss, MetricMode::min, 3, 0, flat), 5);
  // An improvement starts the count again.
  EXPECT_EQ(stopped_at(h, EarlyStopMetric::val_loss, MetricMode::min, 2, 0, {1.0, 1.0, 1.0, 0.9, 1.0, 1.0, 1.0}), 7);
}

TEST(EarlyStopping, AnImprovementMustExceedMinDelta) {
  TechniqueHarness h;
  // min_delta 0.25 (exact in binary): 0.75 after 1.0 is not an improvement (not more than 0.25),
  // 0.5 is; then 0.3 is not (by 0.2), nor is 0.26.
  EXPECT_EQ(stopped_at(h, EarlyStopMetric::val_loss, MetricMode::min, 1, 0.25, {1.0, 0.75, 0.5, 0.3, 0.26}), 5);
  EXPECT_EQ(stopped_at(h, EarlyStopMetric::val_loss, MetricMode::min, 1, 0.25, {1.0, 0.75, 0.5, 0.3}), 0);
  EXPECT_EQ(stopped_at(h, EarlyStopMetric::val_loss, MetricMode::min, 1, 0.25, {1.0, 0.75, 0.74, 0.5}), 0) << "0.74: by 0.26";
  // Exactly min_delta is not an improvement: 0.6 is measured from 1.0 (better), not from 0.75 (not).
  EXPECT_EQ(stopped_at(h, EarlyStopMetric::val_loss, MetricMode::min, 1, 0.25, {1.0, 0.75, 0.6, 0.6}), 0);
  EXPECT_EQ(stopped_at(h, EarlyStopMetric::val_accuracy, MetricMode::max, 1, 0.25, {0.0, 0.25, 0.4, 0.4}), 0);
  EXPECT_EQ(stopped_at(h, EarlyStopMetric::val_accuracy, MetricMode::max, 1, 0.25, {0.0, 0.25, 0.5, 0.7, 0.74}), 5);
  EXPECT_EQ(stopped_at(h, EarlyStopMetric::val_accuracy, MetricMode::max, 1, 0.25, {0.0, 0.25, 0.5, 0.7}), 0);
}

// Every parameter of the model set to `value`.
void set_weights(TechniqueHarness& h, float value) {
  for (Tensor& p : h.state.params) p.fill(value);
}

std::vector<float> weights(const TechniqueHarness& h) {
  std::vector<float> out;
  for (const Tensor& p : h.state.params)
    for (float v : p.to_vector<float>()) out.push_back(v);
  return out;
}

TEST(EarlyStopping, RestoresCopiesOfTheBestWeightsAtFitEndOnlyWithRestoreBest) {
  for (bool restore_best : {true, false}) {
    SCOPED_TRACE(restore_best ? "restore_best" : "no restore_best");
    TechniqueHarness h;
    EarlyStopping stopping(spec(EarlyStopMetric::val_loss, MetricMode::min, 5, 0, restore_best));
    const std::vector<float> initial = weights(h);
    evaluate(h, stopping, EarlyStopMetric::val_loss, 2, 1.0);  // best: the initial weights
    set_weights(h, 3.0f);
    evaluate(h, stopping, EarlyStopMetric::val_loss, 4, 1.5);
    set_weights(h, 5.0f);
    evaluate(h, stopping, EarlyStopMetric::val_loss, 6, 0.5);  // best: all 5
    set_weights(h, 7.0f);
    evaluate(h, stopping, EarlyStopMetric::val_loss, 8, 0.6);
    stopping.on(Event::fit_end, h.state);
    if (restore_best) {
      EXPECT_TRUE(weights(h) == std::vector<float>(initial.size(), 5.0f));
      EXPECT_EQ(h.lines_starting("restored"), std::vector<std::string>{"restored the best weights (step 6)"});
    } else {
      EXPECT_TRUE(weights(h) == std::vector<float>(initial.size(), 7.0f));
      EXPECT_TRUE(h.lines_starting("restored").empty());
    }
  }
}

TEST(EarlyStopping, BestStepIsInTheSummaryOfARunThatEnded) {
  auto best_step = [](std::optional<StopRequest> stop, bool evaluated) {
    TechniqueHarness h;
    EarlyStopping stopping(spec(EarlyStopMetric::val_loss, MetricMode::min, 3));
    if (evaluated) {
      evaluate(h, stopping, EarlyStopMetric::val_loss, 4, 1.0);
      evaluate(h, stopping, EarlyStopMetric::val_loss, 8, 2.0);
    }
    h.state.stop = stop;
    return h.end_run(stopping).best_step;
  };
  EXPECT_EQ(best_step(std::nullopt, true), std::optional<int64_t>(4));
  EXPECT_EQ(best_step(StopRequest{"completed", "early_stopping", 0, false, ""}, true), std::optional<int64_t>(4));
  EXPECT_EQ(best_step(StopRequest{"completed", "time_limit", 0, false, ""}, true), std::optional<int64_t>(4));
  EXPECT_EQ(best_step(StopRequest{"preempted", "preempted", 75, true, ""}, true), std::nullopt);
  EXPECT_EQ(best_step(StopRequest{"stopped_budget", "budget", 3, true, ""}, true), std::nullopt);
  EXPECT_EQ(best_step(std::nullopt, false), std::nullopt) << "no evaluation, no best step";
}

TEST(EarlyStopping, StateRoundTripsWithTheBestWeights) {
  TechniqueHarness h;
  EarlyStopping stopping(spec(EarlyStopMetric::val_loss, MetricMode::min, 1));
  set_weights(h, 2.0f);
  evaluate(h, stopping, EarlyStopMetric::val_loss, 3, 1.0 / 3.0);  // best
  set_weights(h, 4.0f);
  evaluate(h, stopping, EarlyStopMetric::val_loss, 6, 0.5);  // one without improvement
  ASSERT_FALSE(h.state.stop);
  TechniqueState saved("early_stopping", "ckpt-6");
  stopping.save_state(saved);
  EXPECT_EQ(saved.real("best_metric"), 1.0 / 3.0);
  EXPECT_EQ(saved.integer("best_step"), 3);
  EXPECT_EQ(saved.integer("evals_without_improvement"), 1);
  EXPECT_EQ(saved.integer("has_best_state"), 1);
  ASSERT_EQ(saved.tensors().size(), h.model->state_dict().size());

  EarlyStopping resumed(spec(EarlyStopMetric::val_loss, MetricMode::min, 1));
  resumed.load_state(saved);
  TechniqueState again("early_stopping", "ckpt-6");
  resumed.save_state(again);
  EXPECT_EQ(again.values(), saved.values());
  ASSERT_EQ(again.tensors().size(), saved.tensors().size());
  for (size_t i = 0; i < saved.tensors().size(); ++i) {
    EXPECT_EQ(again.tensors()[i].first, saved.tensors()[i].first);
    EXPECT_TRUE(frugal::testing::same_bits(again.tensors()[i].second, saved.tensors()[i].second)) << i;
  }

  // The resumed process: its model fits, the best metric and the count go on, the weights come back.
  TechniqueHarness g;
  g.state.resumed_from = "ckpt-6";
  resumed.on(Event::run_start, g.state);
  set_weights(g, 9.0f);
  evaluate(g, resumed, EarlyStopMetric::val_loss, 9, 1.0 / 3.0);  // equal to the best: not better
  ASSERT_TRUE(g.state.stop) << "the second evaluation without improvement with patience 1";
  EXPECT_EQ(g.state.stop->reason, "early_stopping");
  resumed.on(Event::fit_end, g.state);
  EXPECT_TRUE(weights(g) == std::vector<float>(weights(g).size(), 2.0f));
  EXPECT_EQ(g.end_run(resumed).best_step, std::optional<int64_t>(3));

  // Saved before any evaluation: NaN best, so the first evaluation after the resume is the best.
  EarlyStopping fresh(spec(EarlyStopMetric::val_loss, MetricMode::min, 0)), fresh_resumed(spec(EarlyStopMetric::val_loss, MetricMode::min, 0));
  TechniqueState empty_best("early_stopping", "ckpt-0");
  fresh.save_state(empty_best);
  fresh_resumed.load_state(empty_best);
  TechniqueHarness k;
  evaluate(k, fresh_resumed, EarlyStopMetric::val_loss, 2, 5.0);
  EXPECT_FALSE(k.state.stop);
  EXPECT_EQ(k.end_run(fresh_resumed).best_step, std::optional<int64_t>(2));
}

TEST(EarlyStopping, BestWeightsThatDoNotFitTheModelAreAnInputErrorAtRunStart) {
  TechniqueHarness other(testing::kHarnessSections, {"model.hidden=[5]"});
  EarlyStopping elsewhere(spec(EarlyStopMetric::val_loss, MetricMode::min, 3));
  evaluate(other, elsewhere, EarlyStopMetric::val_loss, 2, 1.0);
  TechniqueState saved("early_stopping", "runs/x/checkpoint-2.fck");
  elsewhere.save_state(saved);

  TechniqueHarness h;
  h.state.resumed_from = "runs/x/checkpoint-2.fck";
  EarlyStopping stopping(spec(EarlyStopMetric::val_loss, MetricMode::min, 3));
  stopping.load_state(saved);
  EXPECT_INPUT_ERROR(stopping.on(Event::run_start, h.state), "runs/x/checkpoint-2.fck", "best weights");

  // The same model's best weights fit.
  EarlyStopping mine(spec(EarlyStopMetric::val_loss, MetricMode::min, 3)), again(spec(EarlyStopMetric::val_loss, MetricMode::min, 3));
  evaluate(h, mine, EarlyStopMetric::val_loss, 2, 1.0);
  TechniqueState own("early_stopping", "runs/x/checkpoint-2.fck");
  mine.save_state(own);
  again.load_state(own);
  EXPECT_NO_THROW(again.on(Event::run_start, h.state));
}

TEST(EarlyStopping, AMissingOrInconsistentStateIsAnInputError) {
  EarlyStopping stopping(spec(EarlyStopMetric::val_loss, MetricMode::min, 3));
  EXPECT_INPUT_ERROR(stopping.load_state(TechniqueState("early_stopping", "ckpt-4.fck")), "ckpt-4.fck",
                     "technique 'early_stopping'");
  TechniqueState no_weights("early_stopping", "ckpt-4.fck");
  no_weights.put("best_metric", 0.5);
  no_weights.put("best_step", int64_t(2));
  no_weights.put("evals_without_improvement", int64_t(0));
  no_weights.put("has_best_state", int64_t(1));
  EXPECT_INPUT_ERROR(stopping.load_state(no_weights), "ckpt-4.fck", "technique 'early_stopping'", "best weights");
}

// A text model's evaluation has no accuracy (EvalMetrics.accuracy stays -1): watching it, the run
// would stop after `patience` + 1 evaluations whatever the loss does, and with restore_best go back
// to the first evaluation's weights. The job refuses it, as it refuses val_bits_per_char for
// classification.
TEST(EarlyStopping, AJobCannotWatchAMetricItsEvaluationDoesNotHave) {
  TechniqueHarness h;
  EarlyStopping stopping(spec(EarlyStopMetric::val_accuracy, MetricMode::max, 1));
  for (int64_t i = 1; i <= 3; ++i) {
    h.state.step = i;
    h.state.eval = EvalMetrics{1.0 / double(i), -1, 1.0 / double(i), 100};  // text: loss improving
    stopping.on(Event::evaluation_done, h.state);
  }
  ASSERT_TRUE(h.state.stop) << "what such a job would do";

  testing::RunFixture f("early-stopping-text-accuracy", 10, "[model]\nkind = \"mlp\"\n[train]\nsteps = 10\n");
  const std::vector<std::string> text = {"data.kind=\"text\"", "data.val_fraction=0.1", "model.kind=\"gpt\""};
  std::vector<std::string> accuracy = text, bits = text, loss = text;
  accuracy.push_back("train.early_stopping.metric=\"val_accuracy\"");
  bits.push_back("train.early_stopping.metric=\"val_bits_per_char\"");
  loss.push_back("train.early_stopping.patience=2");
  EXPECT_INPUT_ERROR(f.job(accuracy), "[train.early_stopping] metric val_accuracy", "classification");
  EXPECT_NO_THROW(f.job(bits));
  EXPECT_NO_THROW(f.job(loss));
  EXPECT_INPUT_ERROR(f.job({"train.early_stopping.metric=\"val_bits_per_char\""}),
                     "[train.early_stopping] metric val_bits_per_char is for text models");
  EXPECT_NO_THROW(f.job({"train.early_stopping.metric=\"val_accuracy\""}));
}

}  // namespace
}  // namespace frugal::train
