// The data techniques of train/sampling/ (issue 21 part 1): sequence-length warmup's lengths and cut
// batches, curriculum pacing, rankings and epoch orders (pure, pool-bounded), selective backprop's
// choice, importance-sampling probabilities and draws; runs resumed in the middle of each technique
// ending bit-identical to uninterrupted ones; fewer FLOPs counted under warmup; the job keys checked.
#include <algorithm>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <map>
#include <set>

#include <gtest/gtest.h>

#include "frugal/base/signals.h"
#include "frugal/io/safetensors.h"
#include "frugal/train/data_setup.h"
#include "frugal/train/sampling/curriculum.h"
#include "frugal/train/sampling/importance_sampling.h"
#include "frugal/train/sampling/sample_scores.h"
#include "frugal/train/sampling/sampling.h"
#include "frugal/train/sampling/selective_backprop.h"
#include "frugal/train/sampling/seq_warmup.h"
#include "test_util.h"
#include "unit/train/run_fixture.h"

namespace frugal::train {
namespace {

namespace fs = std::filesystem;
using testing::PreemptAt;
using testing::RunFixture;

TEST(SeqWarmup, LengthGrowsLinearlyInMultiplesAndReachesTheContext) {
  SeqWarmupSpec s;
  s.start = 16;
  s.multiple = 8;
  EXPECT_EQ(seq_warmup_length(s, 128, 0, 100), 16);
  EXPECT_EQ(seq_warmup_length(s, 128, 10, 100), 24);   // 16 + 112 x 0.1 = 27.2 -> 24
  EXPECT_EQ(seq_warmup_length(s, 128, 50, 100), 72);   // 16 + 56
  EXPECT_EQ(seq_warmup_length(s, 128, 99, 100), 120);  // 126.9 -> 120
  EXPECT_EQ(seq_warmup_length(s, 128, 100, 100), 128);
  EXPECT_EQ(seq_warmup_length(s, 128, 5000, 100), 128);
  int64_t last = 0;
  for (int64_t t = 0; t < 100; ++t) {
    const int64_t l = seq_warmup_length(s, 128, t, 100);
    EXPECT_GE(l, last);
    EXPECT_EQ(l % 8, 0);
    last = l;
  }
}

TEST(SeqWarmup, TruncateKeepsTheFirstTokensReshapeCutsWindows) {
  std::vector<int64_t> ids(2 * 10), next(2 * 10);
  for (int64_t i = 0; i < 20; ++i) ids[size_t(i)] = i, next[size_t(i)] = 100 + i;
  data::Batch batch;
  batch.inputs = Tensor::from_vector(ids, {2, 10});
  batch.targets = Tensor::from_vector(next, {2, 10});
  data::Batch cut = shorten_text_batch(batch, 4, false);
  EXPECT_EQ(cut.inputs.shape(), (Shape{2, 4}));
  EXPECT_EQ(cut.inputs.to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 3, 10, 11, 12, 13}));
  EXPECT_EQ(cut.targets.to_vector<int64_t>(), (std::vector<int64_t>{100, 101, 102, 103, 110, 111, 112, 113}));
  data::Batch reshaped = shorten_text_batch(batch, 4, true);  // 10 / 4 = 2 windows per row; 2 tokens dropped
  EXPECT_EQ(reshaped.inputs.shape(), (Shape{4, 4}));
  EXPECT_EQ(reshaped.inputs.to_vector<int64_t>(),
            (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13, 14, 15, 16, 17}));
  EXPECT_EQ(reshaped.targets.to_vector<int64_t>()[5], 105);
  EXPECT_EQ(shorten_text_batch(batch, 10, false).inputs.shape(), (Shape{2, 10}));
}

TEST(CurriculumPacing, LinearRootAndStepFromStartToAllData) {
  CurriculumSpec s;
  s.start = 0.2;
  s.full_at = 0.5;
  EXPECT_DOUBLE_EQ(curriculum_pool_fraction(s, 0, 100), 0.2);
  EXPECT_DOUBLE_EQ(curriculum_pool_fraction(s, 25, 100), 0.6);  // half way to step 50
  EXPECT_DOUBLE_EQ(curriculum_pool_fraction(s, 50, 100), 1.0);
  EXPECT_DOUBLE_EQ(curriculum_pool_fraction(s, 99, 100), 1.0);
  s.pacing = CurriculumPacing::root;
  EXPECT_NEAR(curriculum_pool_fraction(s, 25, 100), 0.2 + 0.8 * std::sqrt(0.5), 1e-12);
  EXPECT_GT(curriculum_pool_fraction(s, 5, 100), 0.2 + 0.8 * 0.1);  // root widens faster early
  s.pacing = CurriculumPacing::step;
  s.stages = 4;
  EXPECT_DOUBLE_EQ(curriculum_pool_fraction(s, 12, 100), 0.2);         // x = 0.24: still stage 0
  EXPECT_DOUBLE_EQ(curriculum_pool_fraction(s, 13, 100), 0.2 + 0.2);  // x = 0.26: stage 1
  EXPECT_DOUBLE_EQ(curriculum_pool_fraction(s, 49, 100), 0.2 + 0.6);
  EXPECT_DOUBLE_EQ(curriculum_pool_fraction(s, 50, 100), 1.0);
}

TEST(CurriculumOrder, RankingEasyAntiRandomAndUnscoredLast) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> scores = {0.5f, nan, 0.1f, 0.9f, 0.1f};
  CurriculumSpec s;
  EXPECT_EQ(curriculum_ranking(s, scores, 1), (std::vector<int64_t>{2, 4, 0, 3, 1}));
  s.order = CurriculumOrder::anti;
  EXPECT_EQ(curriculum_ranking(s, scores, 1), (std::vector<int64_t>{3, 0, 2, 4, 1}));
  s.order = CurriculumOrder::random;
  std::vector<int64_t> r = curriculum_ranking(s, scores, 1);
  EXPECT_EQ(r, curriculum_ranking(s, scores, 1));
  EXPECT_NE(r, curriculum_ranking(s, scores, 2));
  std::sort(r.begin(), r.end());
  EXPECT_EQ(r, (std::vector<int64_t>{0, 1, 2, 3, 4}));
}

TEST(CurriculumOrder, EachBatchComesFromItsStepsPoolAndTheOrderIsPure) {
  const int64_t n = 1000;
  std::vector<float> scores(n);
  for (int64_t i = 0; i < n; ++i) scores[size_t(i)] = float((i * 7919) % n);  // a permutation of 0..999
  CurriculumSpec s;
  s.start = 0.1;
  s.full_at = 0.5;
  CurriculumPlan plan;
  plan.batch_size = 50;
  plan.grad_accum = 2;
  plan.steps_per_epoch = 10;  // 20 batches of 50
  plan.total_steps = 40;
  plan.seed = 9;
  const std::vector<int64_t> ranking = curriculum_ranking(s, scores, plan.seed);
  std::vector<int64_t> shuffled(n);
  for (int64_t i = 0; i < n; ++i) shuffled[size_t(i)] = n - 1 - i;
  for (int64_t epoch = 0; epoch < 4; ++epoch) {
    const std::vector<int64_t> order = curriculum_epoch_order(s, plan, ranking, epoch, shuffled);
    ASSERT_EQ(int64_t(order.size()), n);
    EXPECT_EQ(order, curriculum_epoch_order(s, plan, ranking, epoch, shuffled)) << "not pure";
    for (int64_t b = 0; b < 20; ++b) {
      const int64_t step = epoch * 10 + b / 2;
      const double fraction = curriculum_pool_fraction(s, step, 40);
      const float limit = float(std::ceil(fraction * n - 1e-9));  // the pool: scores below this
      std::set<int64_t> rows;
      for (int64_t i = b * 50; i < (b + 1) * 50; ++i) {
        EXPECT_LT(scores[size_t(order[size_t(i)])], limit) << "step " << step;
        rows.insert(order[size_t(i)]);
      }
      EXPECT_EQ(rows.size(), 50u) << "repeats within a batch";
    }
  }
  // The first step's pool is the 100 easiest, and the batches do not just repeat one draw.
  const std::vector<int64_t> first = curriculum_epoch_order(s, plan, ranking, 0, shuffled);
  EXPECT_NE(std::vector<int64_t>(first.begin(), first.begin() + 50), std::vector<int64_t>(first.begin() + 50, first.begin() + 100));
  // Before the curriculum's first step (self scoring), the loader's shuffle stands.
  plan.first_step = 10;
  EXPECT_EQ(curriculum_epoch_order(s, plan, ranking, 0, shuffled), shuffled);
  EXPECT_NE(curriculum_epoch_order(s, plan, ranking, 1, shuffled), shuffled);
}

TEST(SelectiveBackprop, KeepsTheHighestLossRowsInBatchOrder) {
  EXPECT_EQ(select_highest_loss({0.1, 2.0, 0.3, 1.5, 0.2, 0.9}, 0.5), (std::vector<int64_t>{1, 3, 5}));
  EXPECT_EQ(select_highest_loss({0.1, 2.0, 0.3, 1.5, 0.2, 0.9}, 0.34), (std::vector<int64_t>{1, 3, 5}));  // ceil
  EXPECT_EQ(select_highest_loss({0.1, 2.0, 0.3}, 0.01), (std::vector<int64_t>{1}));
  EXPECT_EQ(select_highest_loss({1.0, 1.0, 1.0, 0.5}, 0.5), (std::vector<int64_t>{0, 1}));  // ties: lower row
  EXPECT_EQ(select_highest_loss({0.1, 0.2}, 1.0), (std::vector<int64_t>{0, 1}));

  // Against real logits: the per-row cross-entropy ranks the rows the model gets most wrong first.
  Tensor logits = Tensor::from_vector(std::vector<float>{5, 0, 0, 0, 5, 0, 0, 0, 5, 1, 1, 1}, {4, 3});
  Tensor targets = Tensor::from_vector(std::vector<int64_t>{0, 2, 2, 1}, {4});
  const std::vector<double> losses = per_row_cross_entropy(logits, targets);
  EXPECT_NEAR(losses[0], std::log(std::exp(5.0) + 2) - 5, 1e-9);
  EXPECT_NEAR(losses[3], std::log(3.0), 1e-9);
  EXPECT_EQ(select_highest_loss(losses, 0.5), (std::vector<int64_t>{1, 3}));
  data::Batch batch;
  batch.inputs = logits;
  batch.targets = targets;
  batch.sample_indices = Tensor::from_vector(std::vector<int64_t>{40, 41, 42, 43}, {4});
  data::Batch kept = take_rows(batch, {1, 3});
  EXPECT_EQ(kept.inputs.to_vector<float>(), (std::vector<float>{0, 5, 0, 1, 1, 1}));
  EXPECT_EQ(kept.targets.to_vector<int64_t>(), (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(kept.sample_indices.to_vector<int64_t>(), (std::vector<int64_t>{41, 43}));
}

TEST(ImportanceSampling, ProbabilitiesFollowLossPlusSmoothingAndDrawsFollowThem) {
  const std::vector<double> p = importance_probabilities({1.0f, 3.0f, 0.0f, 0.0f}, 0.5);  // mean 1
  ASSERT_EQ(p.size(), 4u);
  EXPECT_NEAR(p[0], 1.5 / 6, 1e-12);
  EXPECT_NEAR(p[1], 3.5 / 6, 1e-12);
  EXPECT_NEAR(p[2], 0.5 / 6, 1e-12);
  const std::vector<double> uniform = importance_probabilities({0.0f, 0.0f}, 0.5);
  EXPECT_DOUBLE_EQ(uniform[0], 0.5);
  const std::vector<int64_t> drawn = importance_draw(p, 60000, 4, 2);
  EXPECT_EQ(drawn, importance_draw(p, 60000, 4, 2));
  EXPECT_NE(drawn, importance_draw(p, 60000, 4, 3));
  std::map<int64_t, int64_t> counts;
  for (int64_t r : drawn) ++counts[r];
  for (int64_t r = 0; r < 4; ++r)  // within 5 standard deviations of the expected count
    EXPECT_NEAR(double(counts[r]), 60000 * p[size_t(r)], 5 * std::sqrt(60000 * p[size_t(r)])) << "row " << r;
}

// 190 rows, 19 for validation: 171 to train, 11 batches of 16 = 11 steps per epoch; 4 epochs = 44 steps.
const char* kSections =
    "[model]\nkind = \"mlp\"\nhidden = [16, 12]\n"
    "[train]\nepochs = 4\nbatch_size = 16\n"
    "[checkpoint]\nevery_seconds = 0\n";

std::map<std::string, std::vector<float>> weights(const fs::path& file) {
  std::map<std::string, std::vector<float>> out;
  for (const auto& [name, t] : io::read_safetensors(file.string()).tensors) out[name] = t.contiguous().to_vector<float>();
  return out;
}


// The job run whole, then preempted after each of `stops` and resumed: the same weights, bit for bit.
void expect_resume_bit_identical(const std::string& name, int rows, const std::string& sections,
                                 const std::vector<int64_t>& stops, const std::string& score_file_for = "") {
  RunFixture reference(name + "-reference", rows, sections);
  TrainOutcome whole = Trainer(reference.job(), reference.options("run")).run();
  ASSERT_EQ(whole.exit_code, 0);
  const auto expected = weights(reference.dir() / "run" / "model.safetensors");
  RunFixture f(name + "-resumed", rows, sections);
  for (size_t i = 0; i < stops.size(); ++i) {
    Trainer trainer(f.job(), f.options("run", i == 0 ? "" : "auto"));
    trainer.add_technique(std::make_unique<PreemptAt>(stops[i]));
    ASSERT_EQ(trainer.run().exit_code, kExitPreempted) << "preempted after step " << stops[i];
  }
  TrainOutcome outcome = Trainer(f.job(), f.options("run", "auto")).run();
  ASSERT_EQ(outcome.exit_code, 0);
  EXPECT_EQ(outcome.summary.checkpoint.interruptions, int64_t(stops.size()));
  EXPECT_TRUE(weights(f.dir() / "run" / "model.safetensors") == expected);
  EXPECT_EQ(outcome.summary.techniques.size(), whole.summary.techniques.size());
  // The figures too, but for seconds (measured, they differ from run to run).
  auto counts = [](nlohmann::json figures) {
    for (auto it = figures.begin(); it != figures.end();)
      it = it.key().ends_with("_s") ? figures.erase(it) : std::next(it);
    return figures.dump();
  };
  for (const auto& [technique, figures] : whole.summary.techniques)
    EXPECT_EQ(counts(outcome.summary.techniques.at(technique)), counts(figures)) << technique;
}

TEST(SamplingRun, SelfScoredCurriculumResumedInEachPhaseEndsBitIdentical) {
  // Step 5: mid self-scoring epoch (its losses partly recorded); 17: mid-epoch in the curriculum.
  expect_resume_bit_identical("curriculum-self", 190,
                              std::string(kSections) + "[curriculum]\nscore = \"self\"\nstart = 0.3\nfull_at = 0.6\n",
                              {5, 17});
}

TEST(SamplingRun, ImportanceSamplingResumedMidEpochEndsBitIdentical) {
  // 15 and 27: inside the second and third epochs, whose orders come from the snapshot of the table.
  expect_resume_bit_identical("importance", 190,
                              std::string(kSections) + "[importance_sampling]\nsmoothing = 0.2\nreweight = true\n",
                              {15, 27});
}

TEST(SamplingRun, SelectiveBackpropResumedEndsBitIdenticalAndCountsItsRows) {
  const std::string sections = std::string(kSections) + "[selective_backprop]\nkeep = 0.5\nstart_step = 3\n";
  expect_resume_bit_identical("selective", 190, sections, {7});
  RunFixture f("selective-counts", 190, sections);
  TrainOutcome outcome = Trainer(f.job(), f.options("run")).run();
  ASSERT_EQ(outcome.exit_code, 0);
  const nlohmann::json& s = outcome.summary.techniques.at("selective_backprop");
  // Steps 3..43 scored: 4 epochs of 171 rows less the 3 x 16 before step 3; kept: ceil(B / 2) each,
  // 8 of the batches of 16 and 6 of the last batch (11 rows) of each epoch.
  EXPECT_EQ(s.at("samples_scored").get<int64_t>(), 4 * 171 - 3 * 16);
  EXPECT_EQ(s.at("samples_backward").get<int64_t>(), (44 - 4 - 3) * 8 + 4 * 6);
  // Every step from 3 trains on half its rows (ceil): fewer samples seen than 4 epochs of 171.
  EXPECT_EQ(outcome.summary.samples_seen, 3 * 16 + s.at("samples_backward").get<int64_t>());
  EXPECT_LT(outcome.summary.samples_seen, 4 * 171);
}

TEST(SamplingRun, ScoreFileCurriculumAndAFileForOtherData) {
  RunFixture f("curriculum-file", 190, std::string(kSections) + "[curriculum]\nscores = \"scores.safetensors\"\n"
                                                                "score = \"el2n\"\npacing = \"step\"\n");
  const JobSpec job = f.job();
  PreparedData data = prepare_data(job, (f.dir() / "cache").string());
  SampleScores scores;
  scores.samples = data.train.size();
  scores.fingerprint = dataset_fingerprint(data.train);
  std::vector<float> el2n(size_t(scores.samples));
  for (size_t i = 0; i < el2n.size(); ++i) el2n[i] = float((i * 37) % 101);
  scores.scores["el2n"] = el2n;
  scores.cost = {{"run_id", "scorer"}, {"wall_s", 1.5}};
  write_sample_scores((f.dir() / "scores.safetensors").string(), scores);
  TrainOutcome outcome = Trainer(job, f.options("run")).run();
  ASSERT_EQ(outcome.exit_code, 0);
  const nlohmann::json& c = outcome.summary.techniques.at("curriculum");
  EXPECT_EQ(c.at("pacing"), "step");
  EXPECT_EQ(c.at("scoring_cost").at("wall_s"), 1.5);
  EXPECT_EQ(c.at("full_pool_step"), 22);  // half of 44 steps
  EXPECT_LT(c.at("mean_pool_fraction").get<double>(), 1.0);

  // The same scores for a split of another size: refused before anything is written.
  scores.samples = 10;
  scores.scores["el2n"].resize(10);
  write_sample_scores((f.dir() / "scores.safetensors").string(), scores);
  EXPECT_INPUT_ERROR(Trainer(f.job(), f.options("run2")).run(), "scores.safetensors");
  EXPECT_FALSE(fs::exists(f.dir() / "run2"));
}

// A character GPT on a small text: sequence-length warmup trains fewer tokens, counts fewer FLOPs,
// and a run preempted in the middle of the warmup ends bit-identical.
std::string gpt_job(const fs::path& dir, const std::string& name, const std::string& rest) {
  fs::create_directories(dir);
  std::string text;
  for (int i = 0; i < 80; ++i) text += "the quick brown fox jumps over the lazy dog " + std::to_string(i % 7) + "\n";
  std::ofstream(dir / "text.txt") << text;
  const fs::path path = dir / (name + ".toml");
  std::ofstream(path) << "[run]\nname = \"" + name + "\"\nseed = 5\nthreads = 1\nstore = \"" + (dir / "runs.db").string() +
                             "\"\n[data]\nkind = \"text\"\ntrain = \"" + (dir / "text.txt").string() +
                             "\"\n[model]\nkind = \"gpt\"\nlayers = 1\nheads = 2\nwidth = 32\ncontext = 32\n"
                             "[train]\nsteps = 12\nbatch_size = 4\neval_every = 6\n[checkpoint]\nevery_seconds = 0\n" +
                             rest;
  return path.string();
}

TrainOptions quiet(const fs::path& out, const std::string& resume = "") {
  TrainOptions o;
  o.out_dir = out.string();
  o.quiet = true;
  o.resume = resume;
  return o;
}

TEST(SamplingRun, SeqWarmupCountsFewerTokensAndFlopsAndResumesBitIdentical) {
  const fs::path dir = fs::path(::testing::TempDir()) / "frugal-seq-warmup";
  fs::remove_all(dir);
  const std::string warm = "[seq_warmup]\nstart = 8\nsteps = 8\n";
  TrainOutcome plain = Trainer(load_job(gpt_job(dir, "plain", "")), quiet(dir / "plain")).run();
  TrainOutcome warmup = Trainer(load_job(gpt_job(dir, "warm", warm)), quiet(dir / "warm")).run();
  ASSERT_EQ(plain.exit_code, 0);
  ASSERT_EQ(warmup.exit_code, 0);
  const nlohmann::json& w = warmup.summary.techniques.at("seq_warmup");
  // Lengths 8, 8, 16, 16, 24, 24, 32, 32 (rounded down to multiples of 8) over steps 0..7... of 4 windows.
  int64_t expected = 0;
  SeqWarmupSpec spec;
  spec.start = 8;
  for (int64_t t = 0; t < 12; ++t) expected += 4 * seq_warmup_length(spec, 32, t, 8);
  EXPECT_EQ(w.at("tokens_trained").get<int64_t>(), expected);
  EXPECT_EQ(w.at("tokens_full_context").get<int64_t>(), 12 * 4 * 32);
  ASSERT_TRUE(plain.summary.cost.flops && warmup.summary.cost.flops);
  EXPECT_LT(*warmup.summary.cost.flops, 0.9 * *plain.summary.cost.flops);
  EXPECT_GT(*warmup.summary.cost.flops, 0.5 * *plain.summary.cost.flops);

  const auto reference = weights(dir / "warm" / "model.safetensors");
  for (int64_t stop : {3, 6}) {
    Trainer trainer(load_job(gpt_job(dir, "warm", warm)), quiet(dir / "resumed", stop == 3 ? "" : "auto"));
    trainer.add_technique(std::make_unique<PreemptAt>(stop));
    ASSERT_EQ(trainer.run().exit_code, kExitPreempted);
  }
  TrainOutcome resumed = Trainer(load_job(gpt_job(dir, "warm", warm)), quiet(dir / "resumed", "auto")).run();
  ASSERT_EQ(resumed.exit_code, 0);
  EXPECT_TRUE(weights(dir / "resumed" / "model.safetensors") == reference);
  EXPECT_EQ(resumed.summary.techniques.at("seq_warmup").dump(), w.dump());

  // The reshape mode keeps every token of the window (up to T mod L).
  TrainOutcome reshaped =
      Trainer(load_job(gpt_job(dir, "reshape", "[seq_warmup]\nstart = 8\nsteps = 8\nmode = \"reshape\"\n")),
              quiet(dir / "reshape")).run();
  ASSERT_EQ(reshaped.exit_code, 0);
  EXPECT_EQ(reshaped.summary.techniques.at("seq_warmup").at("tokens_trained").get<int64_t>(), 12 * 4 * 32 - 4 * 2 * 8);
}

TEST(SamplingJob, KeysAreChecked) {
  auto job_error = [](const std::string& name, const std::string& section, const std::string& message) {
    RunFixture f(name, 40, std::string(kSections) + section);
    EXPECT_INPUT_ERROR(f.job(), message);
  };
  job_error("sb-keep", "[selective_backprop]\nkeep = 0\n", "[selective_backprop] keep: expected a fraction in (0, 1]");
  job_error("sb-keep2", "[selective_backprop]\nkeep = 1.5\n", "[selective_backprop] keep: expected a fraction in (0, 1]");
  job_error("cur-start", "[curriculum]\nstart = 0\n", "[curriculum] start: expected a fraction in (0, 1]");
  job_error("cur-full", "[curriculum]\nfull_at = 2\n", "[curriculum] full_at: expected a fraction in (0, 1]");
  job_error("cur-pacing", "[curriculum]\npacing = \"exp\"\n", "[curriculum] pacing");
  job_error("cur-file", "[curriculum]\nscore = \"el2n\"\n", "[curriculum] scores: expected a score file");
  job_error("cur-self", "[curriculum]\nscores = \"x.safetensors\"\nscore = \"self\"\n", "[curriculum] score");
  job_error("cur-typo", "[curriculum]\nstrat = 0.5\n", "unknown key 'strat' in [curriculum]");
  job_error("cur-both", "[curriculum]\n[importance_sampling]\n", "both choose each epoch's samples");
  job_error("is-smooth", "[importance_sampling]\nsmoothing = -1\n", "[importance_sampling] smoothing");
  job_error("warm-mlp", "[seq_warmup]\n", "[seq_warmup] is for [model] kind = \"gpt\"");
  const fs::path dir = fs::path(::testing::TempDir()) / "frugal-seq-warmup-keys";
  fs::remove_all(dir);
  EXPECT_INPUT_ERROR(load_job(gpt_job(dir, "a", "[seq_warmup]\nstart = 12\n")), "[seq_warmup] start: expected a multiple");
  EXPECT_INPUT_ERROR(load_job(gpt_job(dir, "b", "[seq_warmup]\nstart = 64\n")), "expected at most [model] context = 32");
  EXPECT_INPUT_ERROR(load_job(gpt_job(dir, "c", "[seq_warmup]\nfraction = 0\n")), "[seq_warmup] fraction");
  EXPECT_INPUT_ERROR(load_job(gpt_job(dir, "d", "[seq_warmup]\nmode = \"fold\"\n")), "[seq_warmup] mode");
  EXPECT_INPUT_ERROR(load_job(gpt_job(dir, "e", "[selective_backprop]\n")), "is for classification data");
}

}  // namespace
}  // namespace frugal::train
