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

TEST(PackCheckpoint, RoundTripsLoopStateWeightsAndOptimizerBitExactly) {
  nn::MlpConfig config;
  config.inputs = 5;
  config.hidden = {7};
  config.outputs = 3;
  std::shared_ptr<nn::Module> model = nn::make_mlp(config, 11);
  optim::AdamWOptions options;
  optim::AdamW optimizer(model->parameters(), options);
  auto schedule = optim::make_schedule([] {
    optim::ScheduleConfig c;
    c.kind = "plateau";
    c.lr = 0.01;
    c.total_steps = 10;
    return c;
  }());
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
  LoopState loop;
  loop.step = 2, loop.micro = 4, loop.epoch = 1, loop.batch_in_epoch = 3, loop.samples_seen = 8;
  loop.last_train_loss = NAN;
  loop.loss_window = 0.1 + 0.2;  // not a short decimal
  loop.loss_window_count = 2;
  loop.best_metric = 1.0 / 3.0;
  loop.best_step = 1;
  loop.has_best_state = true;
  loop.wall_s = 12.5, loop.checkpoint_s = 0.25, loop.lost_s = 3, loop.checkpoints_written = 4, loop.interruptions = 2;
  loop.run_id = "run-1", loop.out_dir = "out", loop.metrics_bytes = 1234, loop.threads = 2;
  std::vector<std::pair<std::string, Tensor>> best;
  for (auto& [name, t] : model->state_dict()) best.emplace_back(name, t.clone());

  std::string dir = ::testing::TempDir() + "/frugal-resume-unit";
  std::filesystem::remove_all(dir);
  io::CheckpointWrite written = io::write_checkpoint(dir, pack_checkpoint(loop, job, *model, optimizer, *schedule, best), 2);
  io::CheckpointState state = io::read_checkpoint(written.path);
  EXPECT_NO_THROW(check_resumable(state, written.path, job));
  JobSpec other = job;
  other.resolved_toml = "[optim]\nlr = 0.5\n";
  EXPECT_THROW(check_resumable(state, written.path, other), InputError);

  std::shared_ptr<nn::Module> model2 = nn::make_mlp(config, 99);  // other weights
  optim::AdamW optimizer2(model2->parameters(), options);
  auto schedule2 = optim::make_schedule([] {
    optim::ScheduleConfig c;
    c.kind = "plateau";
    c.lr = 0.01;
    c.total_steps = 10;
    return c;
  }());
  std::vector<std::pair<std::string, Tensor>> best2;
  LoopState back = unpack_checkpoint(state, written.path, *model2, optimizer2, *schedule2, best2);
  EXPECT_EQ(back.step, 2);
  EXPECT_EQ(back.micro, 4);
  EXPECT_EQ(back.batch_in_epoch, 3);
  EXPECT_TRUE(std::isnan(back.last_train_loss));
  EXPECT_EQ(std::memcmp(&back.loss_window, &loop.loss_window, sizeof(double)), 0);
  EXPECT_EQ(std::memcmp(&back.best_metric, &loop.best_metric, sizeof(double)), 0);
  EXPECT_EQ(back.run_id, "run-1");
  EXPECT_EQ(back.metrics_bytes, 1234);
  EXPECT_EQ(back.checkpoints_written, 4);
  EXPECT_EQ(best2.size(), best.size());
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
    unpack_checkpoint(state, written.path, *wrong, wrong_optimizer, *schedule2, best2);
    ADD_FAILURE() << "expected an InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(written.path), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace frugal::train
