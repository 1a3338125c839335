// `frugal data score`: the job trained for a few epochs by the normal Trainer (a real run, recorded
// in the run store, resumable) with the ScoreRecorder technique, then the per-sample score file
// written with the split's fingerprint and the run's bill. Limits: classification jobs; the job's
// [data_pruning] is ignored (scores are for the whole training split).
#include "frugal/cli/data_score.h"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <sstream>

#include "frugal/base/error.h"
#include "frugal/base/format.h"
#include "frugal/base/suggest.h"
#include "frugal/base/units.h"
#include "frugal/train/sampling/scoring.h"
#include "frugal/train/trainer.h"

namespace frugal::cli {
namespace {

struct ScoreArgs {
  std::string job, out, run_out, resume, kinds = "el2n,grand,loss,forgetting";
  std::vector<std::string> sets;
  int64_t epochs = 0, steps = 0;
  bool quiet = false;
};

std::vector<std::string> parse_kinds(const std::string& text) {
  std::vector<std::string> kinds;
  std::stringstream in(text);
  for (std::string kind; std::getline(in, kind, ',');) {
    if (std::find(train::kScoreKinds.begin(), train::kScoreKinds.end(), kind) == train::kScoreKinds.end())
      throw InputError("--kinds: unknown score '" + kind + "'; expected a comma-separated list of " +
                       join(train::kScoreKinds));
    if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end()) kinds.push_back(kind);
  }
  if (kinds.empty()) throw InputError("--kinds: expected at least one of " + join(train::kScoreKinds));
  return kinds;
}

int run_score(ScoreArgs args) {
  if (args.epochs > 0 && args.steps > 0) throw InputError("--epochs and --steps: give one of them");
  const std::vector<std::string> kinds = parse_kinds(args.kinds);
  if (args.epochs > 0) args.sets.push_back("train.epochs=" + std::to_string(args.epochs));
  if (args.steps > 0) args.sets.push_back("train.steps=" + std::to_string(args.steps));
  if (args.epochs == 0 && args.steps == 0) args.sets.push_back("train.epochs=2");  // an early run (Paul et al.)
  train::JobSpec job = train::load_job(args.job, args.sets);
  if (job.data.kind == train::DataKind::packed)
    throw InputError(job.path + ": frugal data score needs the training split in memory (its fingerprint ties the "
                     "scores to it); packed data streams it: score with the job that reads the raw files");
  job.data_pruning = {};  // the scores are for the whole split
  job.train.early_stopping.enabled = false;  // every row presented every epoch
  train::TrainOptions options;
  options.out_dir = args.run_out;
  options.quiet = args.quiet;
  options.resume = args.resume;
  auto recorder = std::make_unique<train::ScoreRecorder>(kinds);
  train::ScoreRecorder* scores_of_run = recorder.get();
  train::Trainer trainer(job, options);
  trainer.add_technique(std::move(recorder));
  train::TrainOutcome outcome = trainer.run();
  if (outcome.exit_code != 0) {
    std::printf("scoring run %s stopped (%s); continue it with: frugal data score %s --out %s --run-out %s --resume auto\n",
                outcome.summary.run_id.c_str(), outcome.summary.status.c_str(), args.job.c_str(), args.out.c_str(),
                outcome.summary.out_dir.c_str());
    return outcome.exit_code;
  }
  if (!scores_of_run->finished())
    throw InputError(outcome.summary.out_dir + ": the scoring run had already completed; its scores were written "
                     "then (start a new scoring run in another --run-out to write them again)");
  train::SampleScores scores = scores_of_run->scores();
  const cost::CostSummary& c = outcome.summary.cost;
  scores.cost = {{"run_id", outcome.summary.run_id}, {"wall_s", c.wall_s}, {"usd", c.usd.value},
                 {"kwh", c.kwh.value}, {"co2_kg", c.co2_kg.value}, {"epochs", outcome.summary.epochs},
                 {"steps", outcome.summary.steps}, {"flops", c.flops ? *c.flops : 0.0}};
  train::write_sample_scores(args.out, scores);
  std::printf("scores %s: %s for %lld training rows, from run %s (%s epochs, %s, %s)\n", args.out.c_str(),
              join(kinds).c_str(), (long long)scores.samples, outcome.summary.run_id.c_str(),
              number_text(outcome.summary.epochs).c_str(), duration_text(c.wall_s).c_str(), usd_text(c.usd.value).c_str());
  return 0;
}

}  // namespace

Command add_score_command(CLI::App& data_group) {
  CLI::App* score_cmd = data_group.add_subcommand(
      "score", "Train the job briefly (a real, recorded run) and write per-sample scores of its training split: EL2N, "
               "GraNd (gradient norm w.r.t. the last Linear layer), loss (each a mean over the epochs), forgetting events");
  auto args = std::make_shared<ScoreArgs>();
  score_cmd->add_option("job", args->job, "Job file (TOML)")->required();
  score_cmd->add_option("--out", args->out, "The score file to write (safetensors)")->required();
  score_cmd->add_option("--epochs", args->epochs, "Epochs of the scoring run (default 2)")->check(CLI::Range(int64_t(1), int64_t(1000)));
  score_cmd->add_option("--steps", args->steps, "Steps of the scoring run instead (must cover an epoch)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 40));
  score_cmd->add_option("--kinds", args->kinds, "Comma-separated scores: el2n,grand,loss,forgetting (default all)");
  score_cmd->add_option("--run-out", args->run_out, "Run directory of the scoring run (default runs/<name>-<timestamp>)");
  score_cmd->add_option("--resume", args->resume, "'auto': continue an interrupted scoring run in --run-out");
  score_cmd->add_option("--set", args->sets, "Override a job key (repeatable)");
  score_cmd->add_flag("--quiet", args->quiet, "No progress output");
  return {score_cmd, [args] { return run_score(*args); }};
}

}  // namespace frugal::cli
