// Data pruning (see data_pruning.h): which rows to keep, the subset taken before the loader is built,
// and the summary figures with the scoring run's bill added to the run's own.
#include "frugal/train/sampling/data_pruning.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "frugal/base/error.h"
#include "frugal/base/rng.h"
#include "frugal/data/dataset.h"
#include "frugal/train/sampling/sample_scores.h"

namespace frugal::train {

namespace {

int64_t kept_count(double fraction, int64_t n) {
  return std::clamp<int64_t>(int64_t(std::llround(fraction * double(n))), 1, n);
}

// The rows of `rows` with the highest (descending = true) or lowest scores, `count` of them.
std::vector<int64_t> extreme_rows(std::vector<int64_t> rows, const std::vector<float>& scores, int64_t count,
                                  bool descending) {
  std::stable_sort(rows.begin(), rows.end(), [&](int64_t a, int64_t b) {
    return descending ? scores[size_t(a)] > scores[size_t(b)] : scores[size_t(a)] < scores[size_t(b)];
  });
  rows.resize(size_t(std::min<int64_t>(count, int64_t(rows.size()))));
  return rows;
}

}  // namespace

std::vector<int64_t> choose_kept_rows(const std::vector<float>& scores, const std::vector<int64_t>& targets,
                                      double fraction, DataPruningKeep keep, uint64_t seed) {
  const int64_t n = int64_t(scores.size());
  if (!(fraction > 0 && fraction <= 1)) throw InputError("data pruning: fraction must be in (0, 1]");
  if (int64_t(targets.size()) != n) throw InputError("data pruning: one score per training row expected");
  std::vector<int64_t> all(static_cast<size_t>(n));
  std::iota(all.begin(), all.end(), 0);
  std::vector<int64_t> kept;
  switch (keep) {
    case DataPruningKeep::hardest: kept = extreme_rows(all, scores, kept_count(fraction, n), true); break;
    case DataPruningKeep::easiest: kept = extreme_rows(all, scores, kept_count(fraction, n), false); break;
    case DataPruningKeep::balanced: {
      std::map<int64_t, std::vector<int64_t>> by_class;
      for (int64_t i = 0; i < n; ++i) by_class[targets[size_t(i)]].push_back(i);
      for (auto& [label, rows] : by_class) {
        const int64_t count = kept_count(fraction, int64_t(rows.size()));
        for (int64_t r : extreme_rows(rows, scores, count, true)) kept.push_back(r);
      }
      break;
    }
    case DataPruningKeep::random: {
      Rng rng(seed, 2, RandomPurpose::split);
      for (int64_t i = n - 1; i > 0; --i) std::swap(all[size_t(i)], all[rng.below(uint64_t(i + 1))]);
      kept.assign(all.begin(), all.begin() + kept_count(fraction, n));
      break;
    }
  }
  std::sort(kept.begin(), kept.end());
  return kept;
}

nlohmann::json apply_data_pruning(const JobSpec& job, PreparedData& data) {
  const DataPruningSpec& p = job.data_pruning;
  const std::string where = job.path + ": [data_pruning] scores = \"" + p.scores + "\"";
  SampleScores scores;
  try {
    scores = read_sample_scores(p.scores, data.train);
  } catch (const InputError& e) {
    throw InputError(where + ": " + e.what());
  }
  const std::vector<float>& values = scores.get(p.score);
  const std::vector<int64_t> targets = data.train.targets.contiguous().to_vector<int64_t>();
  const std::vector<int64_t> kept = choose_kept_rows(values, targets, p.fraction, p.keep, job.run.seed);
  const int64_t of = data.train.size();
  data.train = data::take(data.train, kept);
  data.describe += "; data pruning kept " + std::to_string(kept.size()) + " of " + std::to_string(of) +
                   " training rows (" + name_of(p.keep) + " by " + p.score + ")";
  return {{"scores", p.scores}, {"score", p.score}, {"keep", name_of(p.keep)}, {"fraction", p.fraction},
          {"kept", int64_t(kept.size())}, {"of", of}, {"scoring_cost", scores.cost}};
}

void DataPruningReport::on(Event, TrainState& state) {
  nlohmann::json figures = figures_;
  // The run's own bill plus what computing the scores cost: what data pruning really cost.
  figures["total_with_scoring"] = total_with_scoring(state.summary->cost, figures_["scoring_cost"]);
  state.summary->techniques[name()] = figures;
}

}  // namespace frugal::train
