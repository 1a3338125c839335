// Issue 21's data selection in-process: per-sample quantities (EL2N, GraNd w.r.t. the last layer,
// loss) against direct formulas on hand-made logits, forgetting counts, the rows each keep mode of
// data pruning keeps, k-center greedy and uncertainty on tiny sets, and whole runs: a scoring run and
// a pruned run preempted mid-epoch and resumed end bit-identical to uninterrupted ones.
#include <csignal>
#include <cmath>
#include <filesystem>

#include <gtest/gtest.h>

#include "frugal/base/error.h"
#include "frugal/base/signals.h"
#include "frugal/io/safetensors.h"
#include "frugal/train/active.h"
#include "frugal/train/sampling/data_pruning.h"
#include "frugal/train/sampling/scoring.h"
#include "run_fixture.h"

namespace frugal::train {
namespace {

namespace fs = std::filesystem;
using testing::PreemptAt;
using testing::RunFixture;

TEST(SampleQuantities, MatchDirectFormulas) {
  // Two samples, 3 classes, embedding width 2.
  const std::vector<float> z = {2.0f, 0.5f, -1.0f, 0.0f, 0.0f, 3.0f};
  const std::vector<float> h = {1.0f, 2.0f, -3.0f, 0.5f};
  SampleQuantities q = sample_quantities(Tensor::from_vector(h, {2, 2}), Tensor::from_vector(z, {2, 3}), {0, 1});
  for (int b = 0; b < 2; ++b) {
    const int y = b == 0 ? 0 : 1;
    double sum = 0;
    for (int c = 0; c < 3; ++c) sum += std::exp(double(z[size_t(3 * b + c)]));
    double sq = 0;
    for (int c = 0; c < 3; ++c) {
      const double p = std::exp(double(z[size_t(3 * b + c)])) / sum;
      sq += (p - (c == y)) * (p - (c == y));
    }
    const double h2 = double(h[size_t(2 * b)]) * h[size_t(2 * b)] + double(h[size_t(2 * b + 1)]) * h[size_t(2 * b + 1)];
    EXPECT_NEAR(q.el2n[size_t(b)], std::sqrt(sq), 1e-12);
    EXPECT_NEAR(q.grand[size_t(b)], std::sqrt(sq * (h2 + 1)), 1e-12);  // ||(p - y) [h, 1]^T||_F
    EXPECT_NEAR(q.loss[size_t(b)], std::log(sum) - z[size_t(3 * b + y)], 1e-12);
  }
  EXPECT_EQ(q.correct, (std::vector<uint8_t>{1, 0}));
}

TEST(ForgettingCounter, CountsCorrectToIncorrectAndRanksNeverLearnedHardest) {
  ForgettingCounter f;
  for (bool c : {false, true, false, true, true, false}) f.add(c);
  EXPECT_EQ(f.score(), 2.0);
  ForgettingCounter never;
  for (int i = 0; i < 3; ++i) never.add(false);
  EXPECT_EQ(never.score(), 3.0);
  ForgettingCounter stable;
  for (int i = 0; i < 3; ++i) stable.add(true);
  EXPECT_EQ(stable.score(), 0.0);
}

TEST(ChooseKeptRows, EachKeepMode) {
  const std::vector<float> scores = {0.9f, 0.1f, 0.5f, 0.7f, 0.3f, 0.2f};
  const std::vector<int64_t> targets = {0, 0, 0, 1, 1, 1};
  EXPECT_EQ(choose_kept_rows(scores, targets, 0.5, DataPruningKeep::hardest, 1), (std::vector<int64_t>{0, 2, 3}));
  EXPECT_EQ(choose_kept_rows(scores, targets, 0.5, DataPruningKeep::easiest, 1), (std::vector<int64_t>{1, 4, 5}));
  // Hardest overall would take 0, 3, 2 and 4 (two of class 0 first); balanced takes 2 of each.
  EXPECT_EQ(choose_kept_rows(scores, targets, 0.6, DataPruningKeep::balanced, 1), (std::vector<int64_t>{0, 2, 3, 4}));
  const std::vector<int64_t> r1 = choose_kept_rows(scores, targets, 0.5, DataPruningKeep::random, 1);
  EXPECT_EQ(r1.size(), 3u);
  EXPECT_EQ(r1, choose_kept_rows(scores, targets, 0.5, DataPruningKeep::random, 1)) << "seeded";
  EXPECT_EQ(choose_kept_rows(scores, targets, 1.0, DataPruningKeep::hardest, 1).size(), 6u);
  EXPECT_EQ(choose_kept_rows(scores, targets, 0.01, DataPruningKeep::hardest, 1), (std::vector<int64_t>{0})) << "at least one";
  EXPECT_THROW(choose_kept_rows(scores, targets, 0.0, DataPruningKeep::hardest, 1), InputError);
  EXPECT_THROW(choose_kept_rows(scores, targets, 1.5, DataPruningKeep::hardest, 1), InputError);
}

TEST(KCenterGreedy, PicksTheFarthestPointsFromTheCenters) {
  // Points on a line: 0, 1, 2, 10, 11, 20; the labelled center is 0.
  const std::vector<float> x = {0, 1, 2, 10, 11, 20};
  Tensor points = Tensor::from_vector(x, {6, 1});
  EXPECT_EQ(k_center_greedy(points, {0}, {1, 2, 3, 4, 5}, 1), (std::vector<int64_t>{5}));
  // After 20, the farthest from {0, 20} is 10 (distance 10), then 2 or 11? 2 is 2 from 0, 11 is 1 from 10: 2.
  EXPECT_EQ(k_center_greedy(points, {0}, {1, 2, 3, 4, 5}, 3), (std::vector<int64_t>{5, 3, 2}));
  EXPECT_EQ(k_center_greedy(points, {}, {1, 5}, 2), (std::vector<int64_t>{1, 5})) << "no center: the first candidate";
}

TEST(Uncertainty, EntropyMarginAndLeastConfidence) {
  // Row 0 confident, row 1 uniform over 2 of 3 classes.
  const float big = 20.0f;
  Tensor logits = Tensor::from_vector(std::vector<float>{big, 0, 0, 1, 1, -big}, {2, 3});
  for (ActiveStrategy s : {ActiveStrategy::entropy, ActiveStrategy::margin, ActiveStrategy::least_confidence}) {
    std::vector<double> u = uncertainty(logits, s);
    EXPECT_GT(u[1], u[0]) << name_of(s);
  }
  EXPECT_NEAR(uncertainty(logits, ActiveStrategy::entropy)[1], std::log(2.0), 1e-6);
  EXPECT_NEAR(uncertainty(logits, ActiveStrategy::margin)[1], 0.0, 1e-6);
  EXPECT_NEAR(uncertainty(logits, ActiveStrategy::least_confidence)[1], 0.5, 1e-6);
  EXPECT_THROW(active_strategy("entropi"), InputError);
}

// ---- whole runs ----

const char* kSections =
    "[model]\nkind = \"mlp\"\nhidden = [8]\ndropout = 0.1\n"
    "[optim]\nkind = \"sgd\"\nlr = 0.1\nmomentum = 0.9\n"
    "[train]\nepochs = 2\nbatch_size = 16\nlog_every = 5\n"
    "[checkpoint]\nevery_steps = 5\nevery_seconds = 0\n";


// The model's tensors (the file's metadata names the job's hash, which differs between fixtures).
std::vector<std::vector<float>> weights_of(const fs::path& model_file) {
  std::vector<std::vector<float>> out;
  for (const auto& [name, t] : io::read_safetensors(model_file.string()).tensors)
    out.push_back(t.contiguous().to_vector<float>());
  return out;
}

struct ScoredRun {
  TrainOutcome outcome;
  SampleScores scores;
};

ScoredRun score_run(const RunFixture& f, int64_t preempt_after, const std::string& resume = "") {
  Trainer trainer(f.job(), f.options("run", resume));
  auto recorder = std::make_unique<ScoreRecorder>(kScoreKinds);
  ScoreRecorder* r = recorder.get();
  trainer.add_technique(std::move(recorder));
  if (preempt_after > 0) trainer.add_technique(std::make_unique<PreemptAt>(preempt_after));
  ScoredRun out{trainer.run(), {}};
  if (out.outcome.exit_code == 0) out.scores = r->scores();
  return out;
}

TEST(ScoreRecorder, AScoringRunPreemptedMidEpochResumesToTheSameScores) {
  RunFixture plain("score-plain", 190, kSections);
  ScoredRun reference = score_run(plain, 0);
  ASSERT_EQ(reference.outcome.exit_code, 0);
  ASSERT_EQ(reference.scores.samples, 171);  // 190 minus the 10% val split
  for (const std::string& kind : kScoreKinds) ASSERT_EQ(reference.scores.get(kind).size(), 171u) << kind;
  // EL2N lies in [0, sqrt(2)], GraNd >= EL2N (the embedding's norm adds), forgetting counts <= epochs.
  for (size_t i = 0; i < 171; ++i) {
    EXPECT_GE(reference.scores.get("el2n")[i], 0.0f);
    EXPECT_LE(reference.scores.get("el2n")[i], std::sqrt(2.0f));
    EXPECT_GE(reference.scores.get("grand")[i], reference.scores.get("el2n")[i]);
    EXPECT_LE(reference.scores.get("forgetting")[i], 2.0f);
  }
  RunFixture resumed("score-resumed", 190, kSections);
  EXPECT_EQ(score_run(resumed, 7, "").outcome.exit_code, kExitPreempted);  // mid-epoch (11 steps per epoch)
  ScoredRun second = score_run(resumed, 0, "auto");
  ASSERT_EQ(second.outcome.exit_code, 0);
  EXPECT_EQ(second.outcome.summary.checkpoint.interruptions, 1);
  for (const std::string& kind : kScoreKinds) EXPECT_EQ(second.scores.get(kind), reference.scores.get(kind)) << kind;
  EXPECT_EQ(weights_of(resumed.dir() / "run" / "model.safetensors"), weights_of(plain.dir() / "run" / "model.safetensors"));
  // The scoring forward runs in eval mode without gradients: the trained weights are those of a plain run.
  RunFixture untouched("score-untouched", 190, kSections);
  Trainer trainer(untouched.job(), untouched.options("run"));
  ASSERT_EQ(trainer.run().exit_code, 0);
  EXPECT_EQ(weights_of(untouched.dir() / "run" / "model.safetensors"), weights_of(plain.dir() / "run" / "model.safetensors"));
}

TEST(DataPruning, APrunedRunTrainsOnTheKeptRowsAndResumesBitIdentical) {
  RunFixture scoring("prune-scoring", 190, kSections);
  ScoredRun scored = score_run(scoring, 0);
  ASSERT_EQ(scored.outcome.exit_code, 0);
  scored.scores.cost = {{"run_id", "scoring"}, {"usd", 0.5}, {"kwh", 0.25}, {"co2_kg", 0.1}, {"wall_s", 36.0}};
  const fs::path file = scoring.dir() / "scores.safetensors";
  write_sample_scores(file.string(), scored.scores);
  const std::string sections = std::string(kSections) + "[data_pruning]\nscores = \"" + file.string() +
                               "\"\nscore = \"el2n\"\nfraction = 0.5\nkeep = \"balanced\"\n";
  RunFixture plain("prune-plain", 190, sections);
  TrainOutcome reference = Trainer(plain.job(), plain.options("run")).run();
  ASSERT_EQ(reference.exit_code, 0);
  const nlohmann::json& p = reference.summary.techniques.at("data_pruning");
  EXPECT_EQ(p["of"], 171);
  EXPECT_NEAR(p["kept"].get<double>(), 86, 3) << p.dump();  // per-class rounding
  EXPECT_EQ(reference.summary.samples_seen, 2 * p["kept"].get<int64_t>()) << "2 epochs of the kept rows";
  EXPECT_DOUBLE_EQ(p["total_with_scoring"]["usd"].get<double>(), reference.summary.cost.usd.value + 0.5);
  EXPECT_DOUBLE_EQ(p["total_with_scoring"]["wall_s"].get<double>(), reference.summary.cost.wall_s + 36.0);

  RunFixture resumed("prune-resumed", 190, sections);
  Trainer first(resumed.job(), resumed.options("run"));
  first.add_technique(std::make_unique<PreemptAt>(4));  // mid-epoch (6 steps per epoch)
  EXPECT_EQ(first.run().exit_code, kExitPreempted);
  TrainOutcome second = Trainer(resumed.job(), resumed.options("run", "auto")).run();
  ASSERT_EQ(second.exit_code, 0);
  EXPECT_EQ(second.summary.checkpoint.interruptions, 1);
  EXPECT_EQ(weights_of(resumed.dir() / "run" / "model.safetensors"), weights_of(plain.dir() / "run" / "model.safetensors"));
}

TEST(DataPruning, ScoresOfAnotherSplitAndBadKeysAreRefused) {
  RunFixture scoring("prune-other", 150, kSections);
  ScoredRun scored = score_run(scoring, 0);
  ASSERT_EQ(scored.outcome.exit_code, 0);
  const fs::path file = scoring.dir() / "scores.safetensors";
  write_sample_scores(file.string(), scored.scores);
  RunFixture other("prune-other-run", 190, std::string(kSections) + "[data_pruning]\nscores = \"" + file.string() + "\"\n");
  EXPECT_THROW(Trainer(other.job(), other.options("run")).run(), InputError);
  for (const char* bad : {"fraction = 0.0", "fraction = 1.5", "keep = \"middle\"", "score = \"margin\""}) {
    RunFixture f("prune-bad", 50, std::string(kSections) + "[data_pruning]\nscores = \"x.safetensors\"\n" + bad + "\n");
    EXPECT_THROW(f.job(), InputError) << bad;
  }
}

TEST(TrainRows, TheRunTrainsOnTheGivenRowsOnly) {
  RunFixture f("train-rows", 190, kSections);
  TrainOptions o = f.options("run");
  o.train_rows = std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19};
  TrainOutcome out = Trainer(f.job(), o).run();
  ASSERT_EQ(out.exit_code, 0);
  EXPECT_EQ(out.summary.samples_seen, 40);
  EXPECT_EQ(out.summary.techniques.at("train_rows")["of"], 171);
  TrainOptions bad = f.options("bad");
  bad.train_rows = std::vector<int64_t>{171};
  EXPECT_THROW(Trainer(f.job(), bad).run(), InputError);
}

}  // namespace
}  // namespace frugal::train
