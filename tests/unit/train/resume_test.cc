// Unit tests of the resume support: which job differences are refused, and that a checkpoint's
// loop state, weights and optimizer state come back bit for bit (through a real file).
// Limits: the end-to-end kill-and-resume checks live in tests/e2e/resume_test.cc.
#include "frugal/train/resume.h"

#include <cmath>
#include <cstring>
#include <filesystem>

#include <gtest/gtest.h>

#include "frugal/autograd/autograd.h"
#include "frugal/autograd/ops.h"
#include "frugal/base/error.h"
#include "frugal/nn/zoo.h"
#include "test_util.h"

namespace frugal::train {
namespace {

std::vector<std::string> keys(const std::vector<JobDifference>& differences) {
  std::vector<std::string> out;
  for (const auto& d : differences) out.push_back(d.key);
  return out;
}

const std::string kJob = "[run]\nseed = 1\n[optim]\nlr = 0.001\n[train]\nsteps = 10\nlog_every = 5\neval_every = 5\n";

TEST(ResultDifferences, RefusesTheLearningRateAndAllowsLoggingAndCheckpointKeys) {
  EXPECT_TRUE(result_differences(kJob, kJob).empty());
  std::string lr = "[run]\nseed = 1\n[optim]\nlr = 0.002\n[train]\nsteps = 10\nlog_every = 5\neval_every = 5\n";
  std::vector<JobDifference> d = result_differences(kJob, lr);
  ASSERT_EQ(keys(d), std::vector<std::string>{"optim.lr"});
  EXPECT_EQ(d[0].saved, "0.001");
  EXPECT_EQ(d[0].current, "0.002");
  std::string free = "[run]\nseed = 1\nstore = \"x.db\"\n[optim]\nlr = 0.001\n[train]\nsteps = 10\nlog_every = 7\n"
                     "eval_every = 3\nmax_minutes = 5.0\n[checkpoint]\nevery_steps = 3\nkeep = 1\n[data]\nprefetch = 4\n";
  EXPECT_TRUE(result_differences(kJob, free).empty()) << keys(result_differences(kJob, free)).size();
}

TEST(ResultDifferences, MissingAndDefaultValuedKeysDifferAndEvaluationMattersWithEarlyStopping) {
  std::string seed_default = "[run]\nseed = 0\n[optim]\nlr = 0.001\n[train]\nsteps = 10\nlog_every = 5\neval_every = 5\n";
  std::string no_seed = "[optim]\nlr = 0.001\n[train]\nsteps = 10\nlog_every = 5\neval_every = 5\n";
  EXPECT_EQ(keys(result_differences(kJob, no_seed)), std::vector<std::string>{"run.seed"});
  EXPECT_EQ(result_differences(seed_default, no_seed)[0].current, "");
  std::string stopping = kJob + "[train.early_stopping]\npatience = 2\n";
  std::string stopping_eval = "[run]\nseed = 1\n[optim]\nlr = 0.001\n[train]\nsteps = 10\nlog_every = 5\n"
                              "eval_every = 2\n[train.early_stopping]\npatience = 2\n";
  EXPECT_EQ(keys(result_differences(stopping, stopping_eval)), std::vector<std::string>{"train.eval_every"});
  std::string plateau = kJob + "[schedule]\nkind = \"plateau\"\n";
  std::string plateau_eval = "[run]\nseed = 1\n[optim]\nlr = 0.001\n[train]\nsteps = 10\nlog_every = 5\n"
                             "eval_every = 2\n[schedule]\nkind = \"plateau\"\n";
  EXPECT_EQ(keys(result_differences(plateau, plateau_eval)), std::vector<std::string>{"train.eval_every"});
}

// A technique with every kind of state: an awkward double, NaN, an integer, text and a tensor.
class Stateful : public Technique {
 public:
  std::string name() const override { return "stateful"; }
  EventSet events() const override { return 0; }
  void on(Event, TrainState&) override {}
  void save_state(TechniqueState& out) const override {
    out.put("third", third);
    out.put("nan", nan);
    out.put("count", count);
    out.put_text("label", label);
    if (weights.defined()) out.put_tensor("weights", weights);
  }
  void load_state(const TechniqueState& in) override {
    if (in.empty()) in.fail("missing");
    third = in.real("third");
    nan = in.real("nan");
    count = in.integer("count");
    label = in.text("label");
    for (const auto& [name, t] : in.tensors())
      if (name == "weights") weights = t.clone();
  }
  double third = 0, nan = 0;
  int64_t count = 0;
  std::string label;
  Tensor weights;
};

std::unique_ptr<optim::LrSchedule> plateau_schedule() {
  optim::ScheduleConfig c;
  c.kind = "plateau";
  c.lr = 0.01;
  c.total_steps = 10;
  return optim::make_schedule(c);
}

TEST(PackCheckpoint, RoundTripsPositionWeightsOptimizerAndTechniqueStateBitExactly) {
  nn::MlpConfig config;
  config.inputs = 5;
  config.hidden = {7};
  config.outputs = 3;
  std::shared_ptr<nn::Module> model = nn::make_mlp(config, 11);
  optim::AdamWOptions options;
  optim::AdamW optimizer(model->parameters(), options);
  auto schedule = plateau_schedule();
  Tensor x = Tensor::from_vector(std::vector<float>{0.1f, -0.2f, 0.3f, 0.4f, -0.5f, 1.0f, 0.5f, -1.5f, 0.25f, 2.0f}, {2, 5});
  Tensor y = Tensor::from_vector(std::vector<int64_t>{2, 0}, {2});
  for (int i = 0; i < 2; ++i) {
    autograd::backward(cross_entropy((*model)(x), y));
    optimizer.step();
    optimizer.zero_grad();
  }
  schedule->observe(0.5);

  JobSpec job;
  job.resolved_toml = kJob;
  job.hash = "abc";
  LoopPosition position;
  position.step = 2, position.micro = 4, position.epoch = 1, position.batch_in_epoch = 3, position.samples_seen = 8;
  position.run_id = "run-1", position.out_dir = "out", position.metrics_bytes = 1234, position.threads = 2;
  std::vector<std::unique_ptr<Technique>> techniques;
  auto stateful = std::make_unique<Stateful>();
  stateful->third = 1.0 / 3.0;
  stateful->nan = NAN;
  stateful->count = 1LL << 40;
  stateful->label = "a, b";
  stateful->weights = model->state_dict()[0].second.clone();
  techniques.push_back(std::move(stateful));

  std::string dir = ::testing::TempDir() + "/frugal-resume-unit";
  std::filesystem::remove_all(dir);
  io::CheckpointWrite written =
      io::write_checkpoint(dir, pack_checkpoint(position, job, *model, optimizer, *schedule, techniques), 2);
  io::CheckpointState state = io::read_checkpoint(written.path);
  EXPECT_NO_THROW(check_resumable(state, written.path, job));
  JobSpec other = job;
  other.resolved_toml = "[optim]\nlr = 0.5\n";
  EXPECT_THROW(check_resumable(state, written.path, other), InputError);

  std::shared_ptr<nn::Module> model2 = nn::make_mlp(config, 99);  // other weights
  optim::AdamW optimizer2(model2->parameters(), options);
  auto schedule2 = plateau_schedule();
  std::vector<std::unique_ptr<Technique>> techniques2;
  techniques2.push_back(std::make_unique<Stateful>());
  LoopPosition back = unpack_checkpoint(state, written.path, *model2, optimizer2, *schedule2, techniques2);
  EXPECT_EQ(back.step, 2);
  EXPECT_EQ(back.micro, 4);
  EXPECT_EQ(back.epoch, 1);
  EXPECT_EQ(back.batch_in_epoch, 3);
  EXPECT_EQ(back.samples_seen, 8);
  EXPECT_EQ(back.run_id, "run-1");
  EXPECT_EQ(back.out_dir, "out");
  EXPECT_EQ(back.metrics_bytes, 1234);
  EXPECT_EQ(back.threads, 2);
  const auto& restored = static_cast<const Stateful&>(*techniques2[0]);
  const auto& saved = static_cast<const Stateful&>(*techniques[0]);
  EXPECT_EQ(std::memcmp(&restored.third, &saved.third, sizeof(double)), 0);
  EXPECT_TRUE(std::isnan(restored.nan));
  EXPECT_EQ(restored.count, saved.count);
  EXPECT_EQ(restored.label, "a, b");
  ASSERT_TRUE(restored.weights.defined());
  EXPECT_EQ(restored.weights.to_vector<float>(), saved.weights.to_vector<float>());
  EXPECT_EQ(optimizer2.step_count(), optimizer.step_count());
  EXPECT_EQ(schedule2->lr_at(2), schedule->lr_at(2));

  // One more identical step on both must give identical weights: the moments came back exactly.
  for (auto* pair : {&model, &model2}) {
    optim::AdamW& opt = pair == &model ? optimizer : optimizer2;
    autograd::backward(cross_entropy((**pair)(x), y));
    opt.step();
    opt.zero_grad();
  }
  auto a = model->state_dict(), b = model2->state_dict();
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_EQ(a[i].second.contiguous().to_vector<float>(), b[i].second.contiguous().to_vector<float>()) << a[i].first;

  // A model of another shape is refused, naming the file.
  config.hidden = {6};
  std::shared_ptr<nn::Module> wrong = nn::make_mlp(config, 1);
  optim::AdamW wrong_optimizer(wrong->parameters(), options);
  try {
    unpack_checkpoint(state, written.path, *wrong, wrong_optimizer, *schedule2, techniques2);
    ADD_FAILURE() << "expected an InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(written.path), std::string::npos) << e.what();
  }
  // A run without the technique whose state the checkpoint holds is refused, naming it.
  std::vector<std::unique_ptr<Technique>> none;
  try {
    unpack_checkpoint(state, written.path, *model2, optimizer2, *schedule2, none);
    ADD_FAILURE() << "expected an InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("'stateful'"), std::string::npos) << e.what();
  }
}

// Checkpoints written before techniques existed keep early stopping's, the logged loss's and the
// checkpoint count's state under bare names; they resume into the techniques that own them now.
TEST(UpgradeCheckpoint, MovesLegacyLoopStateToItsTechniques) {
  io::CheckpointState legacy;
  legacy.values = {{"job_toml", kJob + "[train.early_stopping]\npatience = 2\n"},
                   {"last_train_loss", "0.5"},
                   {"loss_window", "0.30000000000000004"},
                   {"loss_window_count", "2"},
                   {"best_metric", "0.25"},
                   {"best_step", "4"},
                   {"evals_without_improvement", "1"},
                   {"has_best_state", "1"},
                   {"checkpoints_written", "3"},
                   {"step", "6"}};
  legacy.tensors.emplace_back("best.layers.1.weight", Tensor::from_vector(std::vector<float>{1, 2}, {2}));
  legacy.tensors.emplace_back("model.layers.1.weight", Tensor::from_vector(std::vector<float>{3, 4}, {2}));
  io::CheckpointState upgraded = legacy;
  upgrade_checkpoint(upgraded);
  EXPECT_EQ(upgraded.values.at("techniques"), "logging,early_stopping,checkpointing");
  EXPECT_EQ(upgraded.values.at("early_stopping.best_metric"), "0.25");
  EXPECT_EQ(upgraded.values.at("logging.loss_window"), "0.30000000000000004");
  EXPECT_EQ(upgraded.values.at("checkpointing.checkpoints_written"), "3");
  EXPECT_EQ(upgraded.values.count("best_metric"), 0u);
  EXPECT_EQ(upgraded.tensors[0].first, "early_stopping.best.layers.1.weight");
  EXPECT_EQ(upgraded.tensors[1].first, "model.layers.1.weight");
  EXPECT_EQ(upgraded.values.at("step"), "6");
  io::CheckpointState again = upgraded;
  upgrade_checkpoint(again);
  EXPECT_EQ(again.values, upgraded.values) << "upgrading twice changes nothing";

  // Without early stopping in the job, its (always written) legacy state is not asked for.
  io::CheckpointState plain = legacy;
  plain.values["job_toml"] = kJob;
  upgrade_checkpoint(plain);
  EXPECT_EQ(plain.values.at("techniques"), "logging,checkpointing");
}

}  // namespace
}  // namespace frugal::train
