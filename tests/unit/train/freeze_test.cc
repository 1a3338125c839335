// [freeze]: frozen parameters get no gradient and no optimizer state and keep their weights; an
// unfreeze entry (by step or by epoch) makes them train from exactly that step; a run preempted
// and resumed in the middle of the schedule ends bit-identical to one never interrupted; patterns
// that match nothing are refused before anything is written.
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <set>

#include <gtest/gtest.h>

#include "frugal/base/signals.h"
#include "frugal/io/safetensors.h"
#include "frugal/train/model_setup.h"
#include "test_util.h"
#include "unit/train/run_fixture.h"

namespace frugal::train {
namespace {

namespace fs = std::filesystem;
using testing::RunFixture;

// 190 rows, 19 for validation: 171 to train, 11 batches of 16 = 11 steps per epoch, 22 in all.
// MLP 16 -> 16 -> 4: layers.1.weight (16, 16), layers.1.bias (16,), layers.3.weight (4, 16),
// layers.3.bias (4,); AdamW with weight decay (the default), so a zero update would still move weights.
const char* kSections =
    "[model]\nkind = \"mlp\"\nhidden = [16]\n"
    "[train]\nepochs = 2\nbatch_size = 16\n"
    "[checkpoint]\nevery_seconds = 0\n";
constexpr int64_t kSteps = 22, kStepsPerEpoch = 11;

// Records, before every optimizer step, which parameters have a gradient; at run_end, the
// optimizer state's parameter indices. Raises SIGUSR1 after step `preempt_after` (0 = never).
class Inspector : public Technique {
 public:
  explicit Inspector(int64_t preempt_after = 0) : preempt_after_(preempt_after) {}
  std::string name() const override { return "inspector"; }
  EventSet events() const override {
    return event_set({Event::before_optimizer_step, Event::after_optimizer_step, Event::run_end});
  }
  void on(Event event, TrainState& state) override {
    if (event == Event::before_optimizer_step) {
      std::set<std::string> with_grad;
      for (const auto& [name, p] : state.model.named_parameters())
        if (p.grad().defined()) with_grad.insert(name);
      grads[state.step] = with_grad;
    } else if (event == Event::after_optimizer_step) {
      if (state.step == preempt_after_) std::raise(SIGUSR1);
    } else {
      for (const auto& [key, t] : state.optimizer.state())
        if (key.rfind("param.", 0) == 0) optimizer_params.insert(std::stoll(key.substr(6)));
    }
  }
  std::map<int64_t, std::set<std::string>> grads;  // step -> parameters with a gradient
  std::set<int64_t> optimizer_params;              // k of "param.<k>.*" at the end

 private:
  int64_t preempt_after_;
};

std::map<std::string, std::vector<float>> weights(const fs::path& file) {
  std::map<std::string, std::vector<float>> out;
  for (const auto& [name, t] : io::read_safetensors(file.string()).tensors) out[name] = t.contiguous().to_vector<float>();
  return out;
}

std::map<std::string, std::vector<float>> initial_weights(const RunFixture& f) {
  JobSpec job = f.job();
  PreparedData data = prepare_data(job, (f.dir() / "cache").string());
  std::map<std::string, std::vector<float>> out;
  for (const auto& [name, t] : build_model(job, data)->state_dict()) out[name] = t.contiguous().to_vector<float>();
  return out;
}

const std::set<std::string> kHead = {"layers.3.weight", "layers.3.bias"};
const std::set<std::string> kAll = {"layers.1.weight", "layers.1.bias", "layers.3.weight", "layers.3.bias"};

TEST(Freeze, FrozenParametersGetNoGradientNoOptimizerStateAndKeepTheirWeights) {
  RunFixture f("freeze-plain", 190, std::string(kSections) + "[freeze]\nparams = [\"layers.1.*\"]\n");
  Trainer trainer(f.job(), f.options("run"));
  auto inspector = std::make_unique<Inspector>();
  Inspector* seen = inspector.get();
  trainer.add_technique(std::move(inspector));
  TrainOutcome outcome = trainer.run();
  ASSERT_EQ(outcome.exit_code, 0);
  ASSERT_EQ(seen->grads.size(), size_t(kSteps));
  for (const auto& [step, names] : seen->grads) EXPECT_EQ(names, kHead) << "step " << step;
  // The groups are decay [layers.1.weight, layers.3.weight], no_decay [layers.1.bias, layers.3.bias]:
  // only k = 1 and 3 (the head) ever had a gradient, so only they have AdamW moments.
  EXPECT_EQ(seen->optimizer_params, (std::set<int64_t>{1, 3}));
  auto before = initial_weights(f), after = weights(f.dir() / "run" / "model.safetensors");
  EXPECT_EQ(after["layers.1.weight"], before["layers.1.weight"]) << "no gradient, no decay: unchanged";
  EXPECT_EQ(after["layers.1.bias"], before["layers.1.bias"]);
  EXPECT_NE(after["layers.3.weight"], before["layers.3.weight"]);
  EXPECT_EQ(outcome.summary.params, 16 * 16 + 16 + 4 * 16 + 4);
  EXPECT_EQ(outcome.summary.trainable_params, 4 * 16 + 4);
}

TEST(Freeze, UnfreezingByStepOrEpochTrainsFromThatStepOn) {
  for (const std::string entry : {"step = 7", "epoch = 1"}) {
    const int64_t from = entry == "step = 7" ? 7 : kStepsPerEpoch;
    RunFixture f("freeze-unfreeze-" + std::to_string(from), 190,
                 std::string(kSections) + "[freeze]\nparams = [\"layers.1.*\", \"layers.3.weight\"]\nunfreeze = [{ " +
                     entry + ", params = [\"layers.1.*\"] }, { step = 3, params = [\"layers.3.weight\"] }]\n");
    TrainOptions options = f.options("run");
    options.quiet = false;
    options.log = std::fopen((f.dir() / "log.txt").string().c_str(), "w");
    Trainer trainer(f.job(), options);
    auto inspector = std::make_unique<Inspector>();
    Inspector* seen = inspector.get();
    trainer.add_technique(std::move(inspector));
    TrainOutcome outcome = trainer.run();
    std::fclose(options.log);
    ASSERT_EQ(outcome.exit_code, 0);
    for (const auto& [step, names] : seen->grads) {
      std::set<std::string> expected = step < 3 ? std::set<std::string>{"layers.3.bias"} : step < from ? kHead : kAll;
      EXPECT_EQ(names, expected) << entry << ", step " << step;
    }
    EXPECT_EQ(outcome.summary.trainable_params, outcome.summary.params);
    // One line per change of the counts: at run_start, and at each of the two unfreeze points.
    const std::string log = testing::read_text(f.dir() / "log.txt");
    EXPECT_NE(log.find("freeze: from step 0, 4 parameters train, 336 frozen (3 tensors)"), std::string::npos) << log;
    EXPECT_NE(log.find("freeze: from step 3, 68 parameters train, 272 frozen (2 tensors)"), std::string::npos) << log;
    EXPECT_NE(log.find("freeze: from step " + std::to_string(from) + ", 340 parameters train, 0 frozen (0 tensors)"),
              std::string::npos)
        << log;
  }
}

TEST(Freeze, ARunResumedInTheMiddleOfTheScheduleEndsBitIdentical) {
  // With lr multipliers too: their groups are rebuilt alike on resume.
  const std::string sections = std::string(kSections) + "[optim]\nlr_multipliers = { \"layers.1.*\" = 0.5 }\n" +
                               "[freeze]\nparams = [\"layers.1.*\", \"layers.3.bias\"]\n"
                               "unfreeze = [{ step = 5, params = [\"layers.1.bias\"] },"
                               " { step = 9, params = [\"layers.1.weight\", \"layers.3.bias\"] }]\n";
  RunFixture reference("freeze-reference", 190, sections);
  ASSERT_EQ(Trainer(reference.job(), reference.options("run")).run().exit_code, 0);
  const auto expected = weights(reference.dir() / "run" / "model.safetensors");

  // Preempted after steps 3, 5 (an unfreeze point: the resumed process must unfreeze at run_start)
  // and 12, resumed each time.
  RunFixture f("freeze-resumed", 190, sections);
  for (int64_t stop : {3, 5, 12}) {
    Trainer trainer(f.job(), f.options("run", stop == 3 ? "" : "auto"));
    trainer.add_technique(std::make_unique<Inspector>(stop));
    ASSERT_EQ(trainer.run().exit_code, kExitPreempted) << "preempted after step " << stop;
  }
  Trainer last(f.job(), f.options("run", "auto"));
  last.add_technique(std::make_unique<Inspector>());
  TrainOutcome outcome = last.run();
  ASSERT_EQ(outcome.exit_code, 0);
  EXPECT_EQ(outcome.summary.checkpoint.interruptions, 3);
  EXPECT_TRUE(weights(f.dir() / "run" / "model.safetensors") == expected);
}

TEST(Freeze, PatternsThatMatchNothingAreRefusedBeforeAnythingIsWritten) {
  RunFixture f("freeze-nothing", 190, std::string(kSections) + "[freeze]\nparams = [\"layers.1.*\", \"blocks.*\"]\n");
  EXPECT_INPUT_ERROR(Trainer(f.job(), f.options("run")).run(), "job.toml: [freeze] params pattern \"blocks.*\"",
                     "matches no parameter of the model (layers.1.weight, layers.1.bias");
  EXPECT_FALSE(fs::exists(f.dir() / "run"));
  EXPECT_FALSE(fs::exists(f.dir() / "runs.db"));

  RunFixture g("freeze-unfreeze-nothing", 190,
               std::string(kSections) + "[freeze]\nparams = [\"layers.1.*\"]\n"
                                        "unfreeze = [{ step = 2, params = [\"layers.3.*\"] }]\n");
  EXPECT_INPUT_ERROR(Trainer(g.job(), g.options("run")).run(),
                     "[freeze] unfreeze #1 params pattern \"layers.3.*\" matches none of the frozen parameters");
  EXPECT_FALSE(fs::exists(g.dir() / "run"));
}

TEST(Freeze, FreezingEveryParameterIsRefused) {
  // Nothing would need a gradient: backward would have nothing to do.
  RunFixture f("freeze-all", 190, std::string(kSections) + "[freeze]\nparams = [\"layers.1.*\", \"layers.3.*\"]\n"
                                                           "unfreeze = [{ step = 2, params = [\"layers.3.*\"] }]\n");
  EXPECT_INPUT_ERROR(Trainer(f.job(), f.options("run")).run(),
                     "[freeze] params freezes all 4 parameter tensors of the model; leave some to train");
  EXPECT_FALSE(fs::exists(f.dir() / "run"));
}

TEST(Freeze, TheJobKeysAreChecked) {
  auto job_error = [](const std::string& name, const std::string& freeze, const std::string& message) {
    RunFixture f(name, 40, std::string(kSections) + freeze);
    EXPECT_INPUT_ERROR(f.job(), message);
  };
  job_error("freeze-no-params", "[freeze]\nunfreeze = []\n", "[freeze] params: missing");
  job_error("freeze-empty", "[freeze]\nparams = []\n", "[freeze] params: missing");
  job_error("freeze-both", "[freeze]\nparams = [\"a\"]\nunfreeze = [{ step = 2, epoch = 1, params = [\"a\"] }]\n",
            "[freeze.unfreeze #1] epoch: set either step (optimizer steps done) or epoch (epochs done), not both");
  job_error("freeze-neither", "[freeze]\nparams = [\"a\"]\nunfreeze = [{ params = [\"a\"] }]\n", "not neither");
  job_error("freeze-step-0", "[freeze]\nparams = [\"a\"]\nunfreeze = [{ step = 0, params = [\"a\"] }]\n",
            "[freeze.unfreeze #1] step = 0: expected an integer in [1,");
  job_error("freeze-typo", "[freeze]\nparams = [\"a\"]\nunfreeze = [{ step = 2, parmas = [\"a\"] }]\n",
            "unknown key 'parmas' in [freeze.unfreeze #1]; did you mean 'params'?");
  job_error("freeze-not-tables", "[freeze]\nparams = [\"a\"]\nunfreeze = [2]\n",
            "[freeze] unfreeze = [ 2 ]: expected an array of tables");
}

}  // namespace
}  // namespace frugal::train
