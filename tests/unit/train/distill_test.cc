// Knowledge distillation (train/compress/distill.h): the loss against a hand computation and by
// gradcheck in double; the technique's loss at after_loss and a teacher that gets no gradients; the
// logit cache (hit and miss give bit-identical weights, a hit runs no teacher and needs no teacher
// weights file, a damaged or stale file is rebuilt); preempted and resumed distilled runs, with
// and without the cache, end bit-identical to uninterrupted ones; a resume against another teacher
// is refused. The teacher is a small MLP trained once on the fixture's 4-class CSV.
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "frugal/autograd/gradcheck.h"
#include "frugal/autograd/ops.h"
#include "frugal/base/signals.h"
#include "frugal/io/safetensors.h"
#include "frugal/train/compress/distill.h"
#include "test_util.h"
#include "unit/train/technique_harness.h"

namespace frugal::train {
namespace {

namespace fs = std::filesystem;
using testing::PreemptAt;
using testing::RunFixture;

// ---- the loss ----

// softmax of one row in double.
std::vector<double> softmax_row(const std::vector<double>& x, double temperature) {
  double top = x[0];
  for (double v : x) top = std::max(top, v);
  std::vector<double> out(x.size());
  double total = 0;
  for (size_t i = 0; i < x.size(); ++i) total += out[i] = std::exp((x[i] - top) / temperature);
  for (double& v : out) v /= total;
  return out;
}

TEST(DistillationLoss, MatchesAHandComputation) {
  const std::vector<double> s = {1.0, -0.5, 2.0, 0.3, 0.0, -1.2}, t = {0.2, 1.5, -0.7, 2.2, -0.4, 0.9};
  const double temperature = 2.0;
  Tensor student = Tensor::from_vector(s, {2, 3}).to(DType::f32).set_requires_grad(true);
  Tensor teacher = Tensor::from_vector(t, {2, 3}).to(DType::f32);
  Tensor loss = distillation_loss(student, teacher, temperature);
  // T^2 / N x sum_rows sum_j p_j log(p_j / q_j), and its gradient T (q - p) / N.
  double expected = 0;
  std::vector<double> grad(6);
  for (int r = 0; r < 2; ++r) {
    std::vector<double> p = softmax_row({t.begin() + 3 * r, t.begin() + 3 * r + 3}, temperature);
    std::vector<double> q = softmax_row({s.begin() + 3 * r, s.begin() + 3 * r + 3}, temperature);
    for (int j = 0; j < 3; ++j) {
      expected += p[size_t(j)] * std::log(p[size_t(j)] / q[size_t(j)]);
      grad[size_t(3 * r + j)] = temperature * (q[size_t(j)] - p[size_t(j)]) / 2.0;
    }
  }
  expected *= temperature * temperature / 2.0;
  EXPECT_NEAR(loss.item(), expected, 1e-6 * std::fabs(expected));
  EXPECT_GT(expected, 0.0);
  autograd::backward(loss);
  std::vector<float> got = student.grad().to_vector<float>();
  for (size_t i = 0; i < grad.size(); ++i) EXPECT_NEAR(got[i], grad[i], 1e-6) << i;

  // The objective: alpha x that + (1 - alpha) x cross-entropy on the labels.
  Tensor targets = Tensor::from_vector<int64_t>({2, 0}, {2});
  Tensor student2 = Tensor::from_vector(s, {2, 3}).to(DType::f32);
  Tensor hard = cross_entropy(student2, targets);
  double hard_expected = 0;
  for (int r = 0; r < 2; ++r) {
    std::vector<double> q = softmax_row({s.begin() + 3 * r, s.begin() + 3 * r + 3}, 1.0);
    hard_expected -= std::log(q[size_t(r == 0 ? 2 : 0)]) / 2.0;
  }
  Tensor objective = distillation_objective(student2, teacher, hard, 0.7, temperature);
  EXPECT_NEAR(objective.item(), 0.7 * expected + 0.3 * hard_expected, 1e-6);
  EXPECT_NEAR(distillation_objective(student2, teacher, hard, 1.0, temperature).item(), expected, 1e-6);

  // The same logits give 0; a teacher so confident that its f32 probabilities underflow to 0 still
  // gives a finite loss (0 log 0 = 0).
  EXPECT_NEAR(distillation_loss(teacher, teacher, 3.0).item(), 0.0, 1e-6);
  Tensor confident = Tensor::from_vector<float>({500, -500, 0, -900}, {1, 4});
  Tensor student3 = Tensor::from_vector<float>({0.5, 0.1, -0.2, 0.3}, {1, 4});
  const double value = distillation_loss(student3, confident, 1.0).item();
  EXPECT_TRUE(std::isfinite(value));
  // p = (1, 0, 0, 0): KL = -log q_0.
  std::vector<double> q = softmax_row({0.5, 0.1, -0.2, 0.3}, 1.0);
  EXPECT_NEAR(value, -std::log(q[0]), 1e-6);
}

TEST(DistillationLoss, Gradcheck) {
  for (double temperature : {1.0, 2.5, 4.0}) {
    Tensor student = frugal::testing::random_leaf({4, 5}, 11, -3, 3);
    Tensor teacher = frugal::testing::random_tensor({4, 5}, 12, DType::f64, -3, 3);
    auto r = gradcheck([&](const std::vector<Tensor>& in) { return distillation_loss(in[0], teacher, temperature); },
                       {student});
    EXPECT_TRUE(r.ok) << "T " << temperature << ": " << r.message;
    Tensor targets = Tensor::from_vector<int64_t>({1, 4, 0, 2}, {4});
    r = gradcheck(
        [&](const std::vector<Tensor>& in) {
          return distillation_objective(in[0], teacher, cross_entropy(in[0], targets), 0.6, temperature);
        },
        {student});
    EXPECT_TRUE(r.ok) << "objective, T " << temperature << ": " << r.message;
  }
}

// ---- a teacher, trained once ----

const char* kTeacherSections =
    "[model]\nkind = \"mlp\"\nhidden = [32]\n"
    "[optim]\nkind = \"adamw\"\nlr = 0.01\n"
    "[train]\nepochs = 4\nbatch_size = 16\n";

// The teacher's job file and weights, trained on first use (190 rows of the fixture's CSV).
struct Teacher {
  fs::path job, weights;
};
const Teacher& teacher() {
  static const Teacher trained = [] {
    static RunFixture f("distill-teacher", 190, kTeacherSections);
    Trainer trainer(f.job(), f.options("run"));
    EXPECT_EQ(trainer.run().exit_code, 0);
    return Teacher{f.dir() / "job.toml", f.dir() / "run" / "model.safetensors"};
  }();
  return trained;
}

// A student half the teacher's width on the same data (190 rows: 171 to train, 11 batches of 16
// per epoch, 22 steps in 2 epochs), checkpoints at every 5 steps.
std::string student_sections(const std::string& distill_keys, const fs::path& weights = teacher().weights) {
  return "[model]\nkind = \"mlp\"\nhidden = [8]\n"
         "[optim]\nkind = \"sgd\"\nlr = 0.1\nmomentum = 0.9\n"
         "[train]\nepochs = 2\nbatch_size = 16\nlog_every = 5\n"
         "[checkpoint]\nevery_steps = 5\nevery_seconds = 0\n"
         "[distill]\nteacher = \"" +
         teacher().job.string() + "\"\nweights = \"" + weights.string() + "\"\nalpha = 0.7\ntemperature = 3.0\n" +
         distill_keys;
}

std::vector<std::vector<float>> weights_of(const fs::path& model_file) {
  std::vector<std::vector<float>> out;
  for (const auto& [name, t] : io::read_safetensors(model_file.string()).tensors)
    out.push_back(t.contiguous().to_vector<float>());
  return out;
}


TrainOutcome run(const RunFixture& f, const std::string& out, int64_t preempt_after = 0,
                 const std::string& resume = "") {
  Trainer trainer(f.job(), f.options(out, resume));
  if (preempt_after > 0) trainer.add_technique(std::make_unique<PreemptAt>(preempt_after));
  return trainer.run();
}

// ---- the technique at after_loss ----

TEST(Distillation, ReplacesTheLossAndTheTeacherGetsNoGradients) {
  testing::TechniqueHarness h(student_sections(""));
  Distillation distill(h.job, h.data);
  EXPECT_EQ(distill.name(), "distill");
  distill.on(Event::run_start, h.state);
  EXPECT_FALSE(distill.teacher()->is_training()) << "the teacher runs in eval mode";

  std::vector<int64_t> rows = {5, 0, 17, 3};
  data::Dataset batch = data::take(h.data.train, rows);
  h.state.batch.inputs = batch.inputs;
  h.state.batch.targets = batch.targets;
  h.state.batch.sample_indices = Tensor::from_vector(rows, {4});
  h.state.logits = (*h.model)(batch.inputs);
  h.state.loss = cross_entropy(h.state.logits, batch.targets);
  const double hard = h.state.loss.item();
  distill.on(Event::after_loss, h.state);

  // By hand, from the two models' logits in double.
  std::vector<float> s = h.state.logits.to_vector<float>();
  std::vector<float> t;
  {
    autograd::NoGradGuard no_grad;
    t = (*distill.teacher())(batch.inputs).to_vector<float>();
  }
  double kl = 0;
  for (int r = 0; r < 4; ++r) {
    std::vector<double> p = softmax_row({t.begin() + 4 * r, t.begin() + 4 * r + 4}, 3.0);
    std::vector<double> q = softmax_row({s.begin() + 4 * r, s.begin() + 4 * r + 4}, 3.0);
    for (int j = 0; j < 4; ++j) kl += p[size_t(j)] * std::log(p[size_t(j)] / q[size_t(j)]);
  }
  const double expected = 0.7 * 9.0 * kl / 4.0 + 0.3 * hard;
  EXPECT_NEAR(h.state.loss.item(), expected, 1e-5 * expected);

  autograd::backward(h.state.loss);
  for (const Tensor& p : h.model->parameters()) EXPECT_TRUE(p.grad().defined()) << "the student learns";
  for (const Tensor& p : distill.teacher()->parameters()) EXPECT_FALSE(p.grad().defined()) << "the teacher does not";

  RunSummary summary;
  h.state.summary = &summary;
  distill.on(Event::run_end, h.state);
  h.state.summary = nullptr;
  ASSERT_TRUE(summary.distill.has_value());
  EXPECT_EQ(summary.distill->teacher_forward_batches, 1);
  EXPECT_GT(summary.distill->teacher_forward_s, 0.0);
  EXPECT_EQ(summary.distill->teacher_params, 16 * 32 + 32 + 32 * 4 + 4);
  EXPECT_FALSE(summary.distill->cache);
  // The summary's JSON round-trips.
  RunSummary back = RunSummary::from_json(summary.to_json(), "test");
  ASSERT_TRUE(back.distill.has_value());
  EXPECT_EQ(back.distill->teacher, summary.distill->teacher);
  EXPECT_EQ(back.distill->alpha, 0.7);
}

// ---- whole runs: resume, cache ----

TEST(Distillation, APreemptedAndResumedRunEndsBitIdentical) {
  RunFixture plain("distill-plain", 190, student_sections(""));
  TrainOutcome reference = run(plain, "run");
  ASSERT_EQ(reference.exit_code, 0);
  ASSERT_TRUE(reference.summary.distill.has_value());
  EXPECT_EQ(reference.summary.distill->teacher_forward_batches, 22);  // every micro-batch
  EXPECT_FALSE(reference.summary.distill->cache);

  RunFixture resumed("distill-resumed", 190, student_sections(""));
  EXPECT_EQ(run(resumed, "run", 7).exit_code, kExitPreempted);  // mid-epoch (epoch 0 has 11 steps)
  TrainOutcome second = run(resumed, "run", 0, "auto");
  ASSERT_EQ(second.exit_code, 0);
  EXPECT_TRUE(weights_of(resumed.dir() / "run" / "model.safetensors") ==
              weights_of(plain.dir() / "run" / "model.safetensors"));
  EXPECT_EQ(second.summary.checkpoint.interruptions, 1);
  EXPECT_EQ(second.summary.distill->teacher_forward_batches, 22) << "both processes counted";
}

// Other weights of the same shapes (values scaled) written over `file`.
void change_weights(const fs::path& file, const fs::path& from) {
  std::vector<std::pair<std::string, Tensor>> changed;
  for (const auto& [name, t] : io::read_safetensors(from.string()).tensors) changed.emplace_back(name, mul_scalar(t, 0.5));
  io::write_safetensors(file.string(), changed);
}

TEST(Distillation, CacheHitAndMissGiveBitIdenticalWeights) {
  RunFixture f("distill-cache", 190, "");
  const fs::path copy = f.dir() / "teacher.safetensors";
  fs::copy_file(teacher().weights, copy);
  std::ofstream(f.dir() / "job.toml", std::ios::app) << student_sections("cache = true\n", copy);
  TrainOutcome miss = run(f, "miss");
  ASSERT_EQ(miss.exit_code, 0);
  const DistillSummary& built = *miss.summary.distill;
  EXPECT_TRUE(built.cache);
  EXPECT_EQ(built.cache_status, "built");
  EXPECT_EQ(built.teacher_forward_batches, 0) << "training reads the cache";
  EXPECT_GT(built.cache_build_s, 0.0);
  ASSERT_TRUE(fs::is_regular_file(built.cache_path));
  EXPECT_EQ(fs::path(built.cache_path).parent_path(), f.dir() / "cache") << "beside the run store";
  EXPECT_GT(built.cache_bytes, 171 * 4 * 4);  // 171 samples x 4 classes of f32, and a header

  TrainOutcome hit = run(f, "hit");
  ASSERT_EQ(hit.exit_code, 0);
  EXPECT_EQ(hit.summary.distill->cache_status, "reused");
  EXPECT_EQ(hit.summary.distill->cache_build_s, 0.0);
  EXPECT_EQ(hit.summary.distill->teacher_forward_batches, 0);
  EXPECT_EQ(hit.summary.distill->teacher_forward_s, 0.0);
  EXPECT_EQ(hit.summary.distill->cache_build_flops, 0.0);
  const auto expected = weights_of(f.dir() / "miss" / "model.safetensors");
  EXPECT_TRUE(weights_of(f.dir() / "hit" / "model.safetensors") == expected);

  // A damaged cache (one byte of its logits changed) is rebuilt with a warning, never used.
  {
    std::fstream file(built.cache_path, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(-7, std::ios::end);
    file.put('\x5a');
  }
  ::testing::internal::CaptureStderr();
  TrainOutcome damaged = run(f, "damaged");
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("checksum"), std::string::npos) << err;
  EXPECT_NE(err.find("rebuilding the distillation cache"), std::string::npos) << err;
  EXPECT_EQ(damaged.summary.distill->cache_status, "rebuilt");
  EXPECT_TRUE(weights_of(f.dir() / "damaged" / "model.safetensors") == expected);
  // A truncated one too.
  fs::resize_file(built.cache_path, 100);
  ::testing::internal::CaptureStderr();
  TrainOutcome truncated = run(f, "truncated");
  EXPECT_NE(::testing::internal::GetCapturedStderr().find("rebuilding"), std::string::npos);
  EXPECT_EQ(truncated.summary.distill->cache_status, "rebuilt");
  EXPECT_TRUE(weights_of(f.dir() / "truncated" / "model.safetensors") == expected);

  // The teacher's weights file removed: the cache stands in for it, no teacher is even loaded.
  fs::remove(copy);
  TrainOutcome gone = run(f, "gone");
  ASSERT_EQ(gone.exit_code, 0);
  EXPECT_EQ(gone.summary.distill->cache_status, "reused");
  EXPECT_EQ(gone.summary.distill->teacher_forward_batches, 0);
  EXPECT_EQ(gone.summary.distill->teacher_params, 16 * 32 + 32 + 32 * 4 + 4);
  EXPECT_TRUE(weights_of(f.dir() / "gone" / "model.safetensors") == expected);
  // Other weights under the same name: the cache is stale, rebuilt with a warning.
  change_weights(copy, teacher().weights);
  ::testing::internal::CaptureStderr();
  TrainOutcome stale = run(f, "stale");
  const std::string stale_err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(stale_err.find("made from other teacher weights"), std::string::npos) << stale_err;
  EXPECT_EQ(stale.summary.distill->cache_status, "rebuilt");
  EXPECT_GT(stale.summary.distill->cache_build_s, 0.0);
  EXPECT_FALSE(weights_of(f.dir() / "stale" / "model.safetensors") == expected) << "another teacher";

  // Preempted and resumed with the cache: the first process builds it, the second reads it.
  RunFixture g("distill-cache-resumed", 190, student_sections("cache = true\n"));
  EXPECT_EQ(run(g, "run", 13).exit_code, kExitPreempted);  // epoch 1
  TrainOutcome resumed = run(g, "run", 0, "auto");
  ASSERT_EQ(resumed.exit_code, 0);
  EXPECT_EQ(resumed.summary.distill->cache_status, "built") << "the run built it";
  EXPECT_GT(resumed.summary.distill->cache_build_s, 0.0) << "carried through the checkpoint";
  EXPECT_TRUE(weights_of(g.dir() / "run" / "model.safetensors") == expected);
}

// The character GPT: the soft targets per position over the vocabulary, the teacher (wider, a
// longer context) run on every micro-batch; preempted and resumed, the run ends bit-identical.
TEST(Distillation, AGptStudentLearnsFromAGptTeacherAndResumesBitIdentical) {
  const fs::path dir = fs::path(::testing::TempDir()) / "frugal-distill-gpt";
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::string text;
  for (int i = 0; i < 60; ++i) text += "the quick brown fox jumps over the lazy dog " + std::to_string(i % 7) + "\n";
  std::ofstream(dir / "text.txt") << text;
  auto job = [&](const std::string& name, const std::string& model, const std::string& rest) {
    const fs::path path = dir / (name + ".toml");
    std::ofstream(path) << "[run]\nname = \"" + name + "\"\nseed = 5\nthreads = 1\nstore = \"" +
                               (dir / "runs.db").string() + "\"\n[data]\nkind = \"text\"\ntrain = \"" +
                               (dir / "text.txt").string() + "\"\n[model]\nkind = \"gpt\"\n" + model + rest;
    return load_job(path.string());
  };
  auto options = [&](const std::string& out, const std::string& resume = "") {
    TrainOptions o;
    o.out_dir = (dir / out).string();
    o.quiet = true;
    o.resume = resume;
    return o;
  };
  {
    Trainer trainer(job("teacher", "layers = 1\nheads = 2\nwidth = 32\ncontext = 16\n", "[train]\nsteps = 6\nbatch_size = 4\n"),
                    options("teacher"));
    ASSERT_EQ(trainer.run().exit_code, 0);
  }
  const std::string student = "layers = 1\nheads = 2\nwidth = 16\ncontext = 8\n";
  const std::string rest = "[train]\nsteps = 8\nbatch_size = 4\n[checkpoint]\nevery_steps = 3\nevery_seconds = 0\n"
                           "[distill]\nteacher = \"" + (dir / "teacher.toml").string() + "\"\nweights = \"" +
                           (dir / "teacher").string() + "\"\nalpha = 0.6\ntemperature = 2.0\n";
  TrainOutcome whole = Trainer(job("student", student, rest), options("whole")).run();
  ASSERT_EQ(whole.exit_code, 0);
  ASSERT_TRUE(whole.summary.distill.has_value());
  EXPECT_EQ(whole.summary.distill->teacher_forward_batches, 8);
  EXPECT_GT(whole.summary.distill->teacher_params, 0);
  // Not the same as training without the teacher.
  TrainOutcome alone = Trainer(job("alone", student, "[train]\nsteps = 8\nbatch_size = 4\n"), options("alone")).run();
  ASSERT_EQ(alone.exit_code, 0);
  EXPECT_FALSE(weights_of(dir / "alone" / "model.safetensors") == weights_of(dir / "whole" / "model.safetensors"));

  const JobSpec resumed_job = job("student", student, rest);
  {
    Trainer first(resumed_job, options("resumed"));
    first.add_technique(std::make_unique<PreemptAt>(4));
    ASSERT_EQ(first.run().exit_code, kExitPreempted);
  }
  TrainOutcome second = Trainer(resumed_job, options("resumed", "auto")).run();
  ASSERT_EQ(second.exit_code, 0);
  EXPECT_EQ(second.summary.distill->teacher_forward_batches, 8) << "both processes counted";
  EXPECT_TRUE(weights_of(dir / "resumed" / "model.safetensors") == weights_of(dir / "whole" / "model.safetensors"));
}

TEST(Distillation, AResumeAgainstAnotherTeacherIsRefused) {
  RunFixture f("distill-other-teacher", 190, "");
  const fs::path copy = f.dir() / "teacher.safetensors";
  fs::copy_file(teacher().weights, copy);
  std::ofstream(f.dir() / "job.toml", std::ios::app) << student_sections("", copy);
  EXPECT_EQ(run(f, "run", 6).exit_code, kExitPreempted);
  change_weights(copy, teacher().weights);  // other weights under the same file name
  try {
    run(f, "run", 0, "auto");
    FAIL() << "resumed against another teacher";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("the teacher changed since the checkpoint"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace frugal::train
