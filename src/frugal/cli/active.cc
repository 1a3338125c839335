// `frugal active`: one strategy over several seeds; prints labels vs test accuracy per round, the
// labels needed to reach the target (mean and spread over the seeds) and the total cost of all the
// rounds' runs. Limits: one strategy per call (run random as the control beside it).
#include "frugal/cli/active.h"

#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>

#include "frugal/base/error.h"
#include "frugal/base/format.h"
#include "frugal/base/units.h"
#include "frugal/train/active.h"

namespace frugal::cli {
namespace {

struct ActiveArgs {
  std::string job, strategy, out, json;
  std::vector<std::string> sets;
  int64_t budget = 0, initial = 0, batch = 0, seeds = 3;
  std::optional<double> target;
};

int run_active(const ActiveArgs& a) {
  train::ActiveOptions o;
  o.strategy = train::active_strategy(a.strategy);
  o.budget = a.budget, o.initial = a.initial, o.batch = a.batch;
  if (a.initial > a.budget) throw InputError("--initial " + std::to_string(a.initial) + " is more than --budget " + std::to_string(a.budget));
  if (a.target && !(*a.target > 0 && *a.target <= 1)) throw InputError("--target-accuracy: expected a fraction in (0, 1]");
  o.target_accuracy = a.target;
  o.out_dir = !a.out.empty() ? a.out
                             : "runs/active-" + std::string(train::name_of(o.strategy)) + "-" +
                                   utc_time(double(std::time(nullptr)), "%Y%m%d-%H%M%S");
  std::printf("active learning: strategy %s, %lld initial labels, +%lld per round, budget %lld, %lld seeds, fresh model "
              "each round; runs in %s\n", train::name_of(o.strategy), (long long)a.initial, (long long)a.batch,
              (long long)a.budget, (long long)a.seeds, o.out_dir.c_str());
  std::vector<train::ActiveResult> results;
  for (int64_t s = 0; s < a.seeds; ++s) {
    results.push_back(train::run_active_learning(a.job, a.sets, uint64_t(s + 1), o, stdout));
    std::fflush(stdout);
  }
  double usd = 0, kwh = 0, wall = 0, select = 0;
  std::vector<double> reached;
  for (const auto& r : results) {
    usd += r.usd, kwh += r.kwh, wall += r.wall_s, select += r.select_s;
    if (r.labels_to_target) reached.push_back(double(*r.labels_to_target));
  }
  std::printf("labels vs test accuracy (mean over %lld seeds):\n", (long long)a.seeds);
  for (size_t i = 0; i < results.front().rounds.size(); ++i) {
    double sum = 0;
    for (const auto& r : results) sum += r.rounds[i].test_accuracy;
    std::printf("  %6lld labels  %.2f%%\n", (long long)results.front().rounds[i].labels, 100 * sum / double(results.size()));
  }
  nlohmann::json out = {{"strategy", train::name_of(o.strategy)}, {"budget", a.budget}, {"initial", a.initial},
                        {"batch", a.batch}, {"usd", usd}, {"kwh", kwh}, {"wall_s", wall}, {"select_s", select}};
  if (a.target) {
    out["target_accuracy"] = *a.target;
    if (reached.size() == results.size()) {
      double mean = 0, var = 0;
      for (double v : reached) mean += v / double(reached.size());
      for (double v : reached) var += (v - mean) * (v - mean) / double(std::max<size_t>(1, reached.size() - 1));
      std::printf("labels to reach %.2f%% test accuracy: mean %.0f, sd %.0f over %zu seeds\n", 100 * *a.target, mean,
                  std::sqrt(var), reached.size());
      out["labels_to_target_mean"] = mean, out["labels_to_target_sd"] = std::sqrt(var);
    } else {
      std::printf("labels to reach %.2f%% test accuracy: not reached within the budget by %zu of %zu seeds\n",
                  100 * *a.target, results.size() - reached.size(), results.size());
    }
  }
  std::printf("total cost of the %zu runs: %s, %s, %s; choosing the rows between rounds took %s more (outside the runs)\n", [&] {
    size_t n = 0;
    for (const auto& r : results) n += r.rounds.size();
    return n;
  }(), usd_text(usd).c_str(), energy_text(kwh).c_str(), duration_text(wall).c_str(), duration_text(select).c_str());
  nlohmann::json seeds = nlohmann::json::array();
  for (const auto& r : results) seeds.push_back(r.to_json());
  out["seeds"] = seeds;
  std::filesystem::create_directories(o.out_dir);
  std::ofstream(std::filesystem::path(o.out_dir) / "active.json") << out.dump(2) << "\n";
  if (!a.json.empty()) std::ofstream(a.json) << out.dump(2) << "\n";
  return 0;
}

}  // namespace

Command add_active_command(CLI::App& app) {
  auto a = std::make_shared<ActiveArgs>();
  CLI::App* cmd = app.add_subcommand(
      "active", "Pool-based active learning: fresh model per round on the labelled rows, label the K the strategy picks "
                "from the pool (the real labels are the oracle), until the budget; labels vs test accuracy");
  cmd->add_option("job", a->job, "Job file (TOML), classification with an mlp or cnn model")->required();
  cmd->add_option("--budget", a->budget, "Labels in all, the last round's")->required()->check(CLI::Range(int64_t(1), int64_t(1) << 40));
  cmd->add_option("--initial", a->initial, "Labels of the first round (a seeded random draw)")->required()->check(CLI::Range(int64_t(1), int64_t(1) << 40));
  cmd->add_option("--batch", a->batch, "Labels added per round")->required()->check(CLI::Range(int64_t(1), int64_t(1) << 40));
  cmd->add_option("--strategy", a->strategy, "entropy | margin | least_confidence | coreset | random")->required();
  cmd->add_option("--seeds", a->seeds, "Seeds 1..N (model init and the initial labels)")->check(CLI::Range(int64_t(1), int64_t(100)));
  cmd->add_option("--target-accuracy", a->target, "Report the labels needed to reach this test accuracy (e.g. 0.85)");
  cmd->add_option("--out", a->out, "Directory of the rounds' runs (default runs/active-<strategy>-<timestamp>)");
  cmd->add_option("--json", a->json, "Also write the results (per seed and round) to this JSON file");
  cmd->add_option("--set", a->sets, "Override a job key (repeatable), e.g. --set train.epochs=20");
  return {cmd, [a] { return run_active(*a); }};
}

}  // namespace frugal::cli
