// The loop's events, in order, exactly as technique.h documents them: a run with gradient
// accumulation (an epoch of 11 micro-batches in steps of 3, 3, 3 and 2), periodic evaluation, a
// periodic checkpoint, a preemption signal (checkpoint, exit 75) and the resumed process. The
// expected sequence is generated from the documentation, not from the loop's code. Also what the
// run's training FLOPs bill: each micro-batch's forward and backward with a technique's dense work at
// the micro-batch's events, not evaluation; the resumed run's FLOPs are the uninterrupted run's.
#include <csignal>

#include <gtest/gtest.h>

#include "frugal/autograd/ops.h"
#include "frugal/base/signals.h"
#include "frugal/io/checkpoint.h"
#include "frugal/io/safetensors.h"
#include "unit/train/run_fixture.h"

namespace frugal::train {
namespace {

using testing::RunFixture;

// Records "event@step" for every event (and load_state / save_state); raises SIGUSR1 after the
// optimizer step `preempt_after` (0 = never). Its state: how many events it has seen.
class Recorder : public Technique {
 public:
  explicit Recorder(std::vector<std::string>& log, int64_t preempt_after = 0) : log_(log), preempt_after_(preempt_after) {}
  std::string name() const override { return "recorder"; }
  EventSet events() const override {
    EventSet all = 0;
    for (int e = 0; e < event_count; ++e) all |= event_set({Event(e)});
    return all;
  }
  void on(Event event, TrainState& state) override {
    ++seen_;
    log_.push_back(std::string(event_name(event)) + "@" + std::to_string(state.step));
    if (event == Event::after_loss) {
      EXPECT_TRUE(state.loss.defined());
    } else if (event == Event::batch_loaded) {
      EXPECT_TRUE(state.batch.inputs.defined());
    } else if (event == Event::run_end) {
      EXPECT_NE(state.summary, nullptr);
    }
    if (event == Event::after_optimizer_step && state.step == preempt_after_) std::raise(SIGUSR1);
  }
  void save_state(TechniqueState& out) const override {
    log_.push_back("save_state");
    out.put("seen", seen_);
  }
  void load_state(const TechniqueState& in) override {
    log_.push_back("load_state");
    seen_ = in.integer("seen");
  }
  int64_t seen() const { return seen_; }

 private:
  std::vector<std::string>& log_;
  int64_t preempt_after_;
  int64_t seen_ = 0;
};

// 190 rows, 19 for validation: 171 to train in 11 batches of 16 (the last of 11) per epoch.
const char* kSections =
    "[model]\nkind = \"mlp\"\nhidden = [16]\n"
    "[train]\nepochs = 2\nbatch_size = 16\ngrad_accum = 3\neval_every = 3\nlog_every = 2\n"
    "[checkpoint]\nevery_steps = 5\nevery_seconds = 0\n";
constexpr int64_t kTotalSteps = 8;
constexpr int kMicroBatches[4] = {3, 3, 3, 2};  // per step of an epoch

// The documented sequence of one process that runs steps [from, to) and then either ends the run
// (to == kTotalSteps) or is preempted after step `to` (a checkpoint, no fit_end).
std::vector<std::string> documented(int64_t from, int64_t to) {
  const bool resumed = from > 0, preempted = to < kTotalSteps;
  std::vector<std::string> out;
  auto at = [](const char* event, int64_t step) { return std::string(event) + "@" + std::to_string(step); };
  if (resumed) out.push_back("load_state");
  out.push_back(at("run_start", from));
  for (int64_t s = from; s < to; ++s) {
    const int64_t in_epoch = s % 4, done = s + 1;
    if (in_epoch == 0 || s == from) out.push_back(at("epoch_start", s));
    for (int m = 0; m < kMicroBatches[in_epoch]; ++m)
      for (const char* e : {"batch_loaded", "after_loss", "after_backward"}) out.push_back(at(e, s));
    out.push_back(at("before_optimizer_step", s));
    out.push_back(at("after_optimizer_step", done));
    if (done % 3 == 0 || done == kTotalSteps) out.push_back(at("evaluation_done", done));
    if (in_epoch == 3) out.push_back(at("epoch_end", done));
    out.push_back(at("step_end", done));
    if ((done % 5 == 0 && done < kTotalSteps) || (preempted && done == to)) out.push_back("save_state");
  }
  if (!preempted) out.push_back(at("fit_end", to));
  out.push_back(at("run_end", to));
  return out;
}

std::string join(const std::vector<std::string>& events) {
  std::string out;
  for (const std::string& e : events) out += e + "\n";
  return out;
}

struct Resumed {
  std::vector<std::string> first, second;
  int first_exit = -1;
  RunSummary summary;  // the resumed process's, which ends the run
};

Resumed run_preempted_after(const RunFixture& f, int64_t step) {
  Resumed r;
  {
    Trainer trainer(f.job(), f.options("run"));
    trainer.add_technique(std::make_unique<Recorder>(r.first, step));
    r.first_exit = trainer.run().exit_code;
  }
  Trainer trainer(f.job(), f.options("run", "auto"));
  trainer.add_technique(std::make_unique<Recorder>(r.second));
  r.summary = trainer.run().summary;
  return r;
}

TEST(Events, AnUninterruptedRunSeesTheDocumentedSequence) {
  RunFixture f("events-plain", 190, kSections);
  std::vector<std::string> log;
  Trainer trainer(f.job(), f.options("run"));
  trainer.add_technique(std::make_unique<Recorder>(log));
  TrainOutcome outcome = trainer.run();
  EXPECT_EQ(outcome.exit_code, 0);
  EXPECT_EQ(outcome.summary.steps, kTotalSteps);
  EXPECT_EQ(outcome.summary.checkpoint.checkpoints, 1);  // step 5
  EXPECT_EQ(join(log), join(documented(0, kTotalSteps)));
}

TEST(Events, APreemptedAndResumedRunSeesTheDocumentedSequenceInEachProcess) {
  RunFixture f("events-resume", 190, kSections);
  Resumed mid_epoch = run_preempted_after(f, 6);  // step 6 of 8: the resumed process starts mid-epoch
  EXPECT_EQ(mid_epoch.first_exit, kExitPreempted);
  EXPECT_EQ(join(mid_epoch.first), join(documented(0, 6)));
  EXPECT_EQ(join(mid_epoch.second), join(documented(6, kTotalSteps)));

  RunFixture g("events-resume-epoch-end", 190, kSections);
  Resumed at_epoch_end = run_preempted_after(g, 4);  // the last step of epoch 0
  EXPECT_EQ(at_epoch_end.first_exit, kExitPreempted);
  EXPECT_EQ(join(at_epoch_end.first), join(documented(0, 4)));
  EXPECT_EQ(join(at_epoch_end.second), join(documented(4, kTotalSteps)));

  // The resumed runs end with the weights of one never interrupted (the files' metadata name their
  // jobs, whose paths differ, so the tensors are compared).
  RunFixture h("events-reference", 190, kSections);
  Trainer reference(h.job(), h.options("run"));
  const cost::CostSummary expected_cost = reference.run().summary.cost;
  auto weights = [](const RunFixture& run) {
    std::vector<std::vector<float>> out;
    for (const auto& [name, t] : io::read_safetensors((run.dir() / "run" / "model.safetensors").string()).tensors)
      out.push_back(t.contiguous().to_vector<float>());
    return out;
  };
  const auto expected = weights(h);
  ASSERT_FALSE(expected.empty());
  EXPECT_TRUE(weights(f) == expected);
  EXPECT_TRUE(weights(g) == expected);
  // And with the training FLOPs of one never interrupted: counted, deterministic, carried through
  // the checkpoint (the work redone after an interruption would count once; here none is).
  ASSERT_TRUE(expected_cost.flops);
  EXPECT_EQ(expected_cost.flops_source, "counted");
  for (const Resumed* r : {&mid_epoch, &at_epoch_end}) {
    EXPECT_EQ(r->summary.cost.flops, expected_cost.flops);
    EXPECT_EQ(r->summary.cost.flops_forward, expected_cost.flops_forward);
    EXPECT_EQ(r->summary.cost.flops_backward, expected_cost.flops_backward);
    EXPECT_EQ(r->summary.cost.flops_eval, expected_cost.flops_eval);
    EXPECT_EQ(r->summary.cost.flops_source, "counted");
  }
}

// A checkpoint of a version before the FLOP counter (no cost.flops_* values): the resumed run
// estimates the checkpoint's samples as that version did (3 x flops_per_sample each: the forward
// exactly, backward without the skipped first input gradient) and says "estimated".
TEST(Events, AResumeFromACheckpointWithoutFlopCountsEstimatesItsPart) {
  RunFixture f("events-old-checkpoint", 190, kSections);
  std::vector<std::string> log;
  {
    Trainer first(f.job(), f.options("run"));
    first.add_technique(std::make_unique<Recorder>(log, 6));
    ASSERT_EQ(first.run().exit_code, kExitPreempted);
  }
  const std::string dir = (f.dir() / "run" / "checkpoints").string();
  std::optional<io::LatestCheckpoint> latest = io::load_latest_checkpoint(dir);
  ASSERT_TRUE(latest);
  io::CheckpointState old = latest->state;
  for (const char* key : {"cost.flops_forward", "cost.flops_backward", "cost.flops_eval", "cost.flops_uncounted_samples"})
    ASSERT_EQ(old.values.erase(key), 1u) << key;
  const double samples_before = double(std::stoll(old.values.at("samples_seen")));
  io::write_checkpoint(dir, old, 3);  // over the same file

  Trainer second(f.job(), f.options("run", "auto"));
  second.add_technique(std::make_unique<Recorder>(log));
  const RunSummary resumed = second.run().summary;
  RunFixture h("events-old-checkpoint-reference", 190, kSections);
  Trainer reference(h.job(), h.options("run"));
  const cost::CostSummary expected = reference.run().summary.cost;
  EXPECT_EQ(resumed.cost.flops_source, "estimated");
  EXPECT_EQ(resumed.cost.flops_forward, expected.flops_forward);
  EXPECT_EQ(resumed.cost.flops_backward, *expected.flops_backward + 2.0 * 16 * 16 * samples_before);
  EXPECT_FALSE(resumed.cost.flops_eval) << "the older version's evaluations were not counted";
  EXPECT_TRUE(expected.flops_eval);
}

// A technique's dense work at a micro-batch's events (a teacher's forward at after_loss, a scoring
// pass at batch_loaded) is training work, billed as forward; at evaluation_done it is evaluation's.
class DenseWork : public Technique {
 public:
  std::string name() const override { return "dense_work"; }
  EventSet events() const override {
    return event_set({Event::batch_loaded, Event::after_loss, Event::after_backward, Event::evaluation_done});
  }
  void on(Event event, TrainState&) override {
    autograd::NoGradGuard no_grad;
    const Tensor a = Tensor::ones({2, 3}), b = Tensor::ones({3, 5});
    matmul(a, b);  // 2 x 2 x 3 x 5 = 60 FLOPs
    if (event == Event::evaluation_done) ++evaluations_;
  }
  int64_t evaluations_ = 0;
};

TEST(Events, ATechniquesDenseWorkAtMicroBatchEventsIsBilledAndEvaluationIsNot) {
  RunFixture f("events-flops", 190, kSections);
  Trainer plain(f.job(), f.options("plain"));
  const RunSummary base = plain.run().summary;
  Trainer with(f.job(), f.options("with"));
  auto technique = std::make_unique<DenseWork>();
  DenseWork* work = technique.get();
  with.add_technique(std::move(technique));
  const RunSummary billed = with.run().summary;
  ASSERT_TRUE(base.cost.flops_per_sample);
  // The MLP's forward for every sample trained on; backward twice it minus the first Linear's
  // input gradient; evaluation (every 3 steps, and the final one) counts apart.
  const double samples = double(base.samples_seen), fps = double(*base.cost.flops_per_sample);
  const double first_input_gradient = 2.0 * 16 * 16 * samples;  // 16 features -> hidden 16
  EXPECT_EQ(base.cost.flops_forward, fps * samples);
  EXPECT_EQ(base.cost.flops_backward, 2 * fps * samples - first_input_gradient);
  const int64_t micro_batches = 2 * 11;
  EXPECT_GT(work->evaluations_, 0);
  EXPECT_EQ(billed.cost.flops_forward, *base.cost.flops_forward + 3 * 60.0 * micro_batches);
  EXPECT_EQ(billed.cost.flops_backward, base.cost.flops_backward);
  EXPECT_EQ(billed.cost.flops, *billed.cost.flops_forward + *billed.cost.flops_backward);
  // Evaluation: the forward over the 19 validation rows at each periodic evaluation (with the
  // technique's product at evaluation_done) and once more for the final metrics.
  const double val_forward = fps * 19;
  EXPECT_EQ(base.cost.flops_eval, val_forward * double(work->evaluations_ + 1));
  EXPECT_EQ(billed.cost.flops_eval, (val_forward + 60.0) * double(work->evaluations_) + val_forward);
  // Achieved FLOP/s: training's over the wall time.
  ASSERT_TRUE(billed.cost.flops_per_s);
  EXPECT_EQ(*billed.cost.flops_per_s, *billed.cost.flops / billed.cost.wall_s);
}

TEST(Events, ATechniqueStateGoesThroughTheCheckpoint) {
  RunFixture f("events-state", 190, kSections);
  std::vector<std::string> first, second;
  Trainer one(f.job(), f.options("run"));
  auto recorder = std::make_unique<Recorder>(first, 6);
  Recorder* a = recorder.get();
  one.add_technique(std::move(recorder));
  one.run();
  // The count saved at the step-6 checkpoint: every on() call up to and including step_end@6.
  int64_t at_checkpoint = 0;
  for (const std::string& e : first) {
    if (e == "save_state" || e == "load_state") continue;
    ++at_checkpoint;
    if (e == "step_end@6") break;
  }
  EXPECT_EQ(a->seen(), at_checkpoint + 1) << "run_end comes after the checkpoint";
  Trainer two(f.job(), f.options("run", "auto"));
  auto resumed = std::make_unique<Recorder>(second);
  Recorder* b = resumed.get();
  two.add_technique(std::move(resumed));
  two.run();
  int64_t calls = 0;
  for (const std::string& e : second) calls += e != "save_state" && e != "load_state";
  EXPECT_EQ(b->seen(), at_checkpoint + calls);

  // A resume without the technique whose state the checkpoint holds is refused.
  RunFixture g("events-missing", 190, kSections);
  std::vector<std::string> log;
  Trainer three(g.job(), g.options("run"));
  three.add_technique(std::make_unique<Recorder>(log, 6));
  three.run();
  Trainer four(g.job(), g.options("run", "auto"));
  EXPECT_THROW(four.run(), InputError);
}

}  // namespace
}  // namespace frugal::train
