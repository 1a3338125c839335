// Pool-based active learning (see active.h): the driver, the uncertainty scores and k-center greedy.
// Each round is a Trainer run on TrainOptions::train_rows with a technique that scores the pool at
// fit_end with the round's final model, in eval mode without gradients.
#include "frugal/train/active.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <memory>
#include <numeric>

#include "frugal/autograd/autograd.h"
#include "frugal/autograd/ops.h"
#include "frugal/base/error.h"
#include "frugal/base/rng.h"
#include "frugal/base/suggest.h"
#include "frugal/data/dataset.h"
#include "frugal/train/sampling/embedding.h"
#include "frugal/train/trainer.h"

namespace frugal::train {

const char* name_of(ActiveStrategy strategy) {
  switch (strategy) {
    case ActiveStrategy::entropy: return "entropy";
    case ActiveStrategy::margin: return "margin";
    case ActiveStrategy::least_confidence: return "least_confidence";
    case ActiveStrategy::coreset: return "coreset";
    case ActiveStrategy::random: return "random";
  }
  return "?";
}

ActiveStrategy active_strategy(const std::string& name) {
  for (ActiveStrategy s : {ActiveStrategy::entropy, ActiveStrategy::margin, ActiveStrategy::least_confidence,
                           ActiveStrategy::coreset, ActiveStrategy::random})
    if (name == name_of(s)) return s;
  const std::vector<std::string> names = {"entropy", "margin", "least_confidence", "coreset", "random"};
  throw InputError("--strategy " + name + ": expected one of " + join(names) + did_you_mean(name, names));
}

std::vector<double> uncertainty(const Tensor& logits, ActiveStrategy strategy) {
  const int64_t N = logits.size(0), C = logits.size(1);
  const std::vector<float> z = logits.contiguous().to_vector<float>();  // (N, C)
  std::vector<double> out(static_cast<size_t>(N)), p(static_cast<size_t>(C));
  for (int64_t n = 0; n < N; ++n) {
    const float* row = z.data() + n * C;
    const double max = *std::max_element(row, row + C);
    double sum = 0;
    for (int64_t c = 0; c < C; ++c) sum += p[size_t(c)] = std::exp(double(row[c]) - max);
    for (double& v : p) v /= sum;
    double score = 0;
    if (strategy == ActiveStrategy::entropy) {
      for (double v : p) score -= v > 0 ? v * std::log(v) : 0.0;
    } else {
      std::vector<double> sorted = p;
      std::partial_sort(sorted.begin(), sorted.begin() + std::min<int64_t>(2, C), sorted.end(), std::greater<>());
      if (strategy == ActiveStrategy::margin) score = -(sorted[0] - (C > 1 ? sorted[1] : 0.0));
      else score = 1.0 - sorted[0];
    }
    out[size_t(n)] = score;
  }
  return out;
}

std::vector<int64_t> k_center_greedy(const Tensor& points, const std::vector<int64_t>& centers,
                                     const std::vector<int64_t>& candidates, int64_t k) {
  // Squared distances from a center c to every candidate as |x|^2 + |c|^2 - 2 x.c, the dot products
  // one dense product (linear: (M, D) x (1, D)^T) per center instead of M scalar loops.
  autograd::NoGradGuard no_grad;
  const int64_t D = points.size(1);
  const Tensor x = points.contiguous();  // (N, D)
  const std::vector<float> all = x.to_vector<float>();
  std::vector<float> gathered;
  gathered.reserve(candidates.size() * size_t(D));
  for (int64_t row : candidates) gathered.insert(gathered.end(), all.begin() + row * D, all.begin() + (row + 1) * D);
  const Tensor cand = Tensor::from_vector(gathered, {int64_t(candidates.size()), D});  // (M, D)
  auto norm2 = [&](int64_t row) {
    double s = 0;
    for (int64_t d = 0; d < D; ++d) s += double(all[size_t(row * D + d)]) * all[size_t(row * D + d)];
    return s;
  };
  std::vector<double> cand_norm2(candidates.size());
  for (size_t i = 0; i < candidates.size(); ++i) cand_norm2[i] = norm2(candidates[i]);
  std::vector<double> nearest(candidates.size(), std::numeric_limits<double>::infinity());
  auto update = [&](int64_t center) {
    const Tensor c = slice(x, 0, center, center + 1);                    // (1, D)
    const std::vector<float> dots = linear(cand, c).contiguous().to_vector<float>();  // (M, 1)
    const double c2 = norm2(center);
    for (size_t i = 0; i < candidates.size(); ++i)
      nearest[i] = std::min(nearest[i], std::max(0.0, cand_norm2[i] + c2 - 2.0 * double(dots[i])));
  };
  for (int64_t c : centers) update(c);
  std::vector<int64_t> chosen;
  std::vector<bool> taken(candidates.size(), false);
  k = std::min<int64_t>(k, int64_t(candidates.size()));
  while (int64_t(chosen.size()) < k) {
    size_t best = 0;
    double best_d = -1;
    for (size_t i = 0; i < candidates.size(); ++i)
      if (!taken[i] && nearest[i] > best_d) best_d = nearest[i], best = i;  // infinity first: candidates[0]
    taken[best] = true;
    chosen.push_back(candidates[best]);
    update(candidates[best]);
  }
  return chosen;
}

nlohmann::json ActiveResult::to_json() const {
  nlohmann::json rows = nlohmann::json::array();
  for (const ActiveRound& r : rounds)
    rows.push_back({{"labels", r.labels}, {"test_accuracy", r.test_accuracy}, {"wall_s", r.wall_s}, {"usd", r.usd},
                    {"kwh", r.kwh}, {"select_s", r.select_s}, {"run_id", r.run_id}});
  nlohmann::json out = {{"seed", seed}, {"rounds", rows}, {"wall_s", wall_s}, {"usd", usd}, {"kwh", kwh},
                        {"select_s", select_s}};
  out["labels_to_target"] = labels_to_target ? nlohmann::json(*labels_to_target) : nlohmann::json();
  return out;
}

namespace {

// At fit_end: the round's final model scores the unlabelled pool (and embeds the labelled rows too
// for the core-set), in batches, eval mode, no gradients.
class PoolScorer : public Technique {
 public:
  PoolScorer(const data::Dataset& full, std::vector<int64_t> rows, bool embeddings)
      : full_(full), rows_(std::move(rows)), embeddings_(embeddings) {}
  std::string name() const override { return "active_pool"; }
  EventSet events() const override { return event_set({Event::fit_end}); }
  void on(Event, TrainState& state) override {
    autograd::NoGradGuard no_grad;
    const bool training = state.model.is_training();
    state.model.train(false);
    std::vector<Tensor> logits, embedded;
    const int64_t B = 1024;
    for (size_t start = 0; start < rows_.size(); start += size_t(B)) {
      std::vector<int64_t> part(rows_.begin() + long(start), rows_.begin() + long(std::min(rows_.size(), start + size_t(B))));
      const data::Dataset batch = data::take(full_, part);
      EmbeddedLogits out = embed_and_classify(state.model, batch.inputs);
      logits.push_back(out.logits);
      if (embeddings_) embedded.push_back(out.embedding);
    }
    state.model.train(training);
    logits_ = concat_rows(logits);
    if (embeddings_) embeddings_out_ = concat_rows(embedded);
  }
  Tensor logits_, embeddings_out_;  // rows_ in order: (R, C), (R, H)

 private:
  static Tensor concat_rows(const std::vector<Tensor>& parts) {
    std::vector<float> all;
    int64_t width = parts.front().size(1), n = 0;
    for (const Tensor& t : parts) {
      const std::vector<float> v = t.contiguous().to_vector<float>();
      all.insert(all.end(), v.begin(), v.end());
      n += t.size(0);
    }
    return Tensor::from_vector(all, {n, width});
  }
  const data::Dataset& full_;
  std::vector<int64_t> rows_;
  bool embeddings_;
};

}  // namespace

ActiveResult run_active_learning(const std::string& job_path, std::vector<std::string> sets, uint64_t seed,
                                 const ActiveOptions& o, FILE* log) {
  sets.push_back("run.seed=" + std::to_string(seed));
  const JobSpec job = load_job(job_path, sets);
  if (job.data.kind == DataKind::packed)
    throw InputError(job.path + ": frugal active needs the training split in memory (it trains on chosen rows); packed "
                     "data streams it: use the job that reads the raw files");
  if (job.data.kind == DataKind::text) throw InputError(job_path + ": active learning is for classification data");
  if (job.data_pruning.enabled) throw InputError(job_path + ": active learning does not combine with [data_pruning]");
  if (!(o.initial > 0 && o.batch > 0 && o.budget >= o.initial))
    throw InputError("active learning: expected --initial > 0, --batch > 0 and --budget >= --initial");
  ActiveResult result;
  result.seed = seed;
  data::Dataset full;
  std::vector<int64_t> labelled;
  for (int64_t round = 0;; ++round) {
    TrainOptions options;
    options.quiet = true;
    options.out_dir = (std::filesystem::path(o.out_dir) / ("seed" + std::to_string(seed)) / ("round" + std::to_string(round))).string();
    std::vector<int64_t> pool;
    options.on_prepared = [&](const PreparedData& data) {
      full = data.train;
      const int64_t n = full.size();
      if (o.budget > n) throw InputError("--budget " + std::to_string(o.budget) + " is more than the " + std::to_string(n) + " training rows");
      if (round == 0) {  // the initial labelled rows: a seeded draw
        std::vector<int64_t> all(static_cast<size_t>(n));
        std::iota(all.begin(), all.end(), 0);
        Rng rng(seed, 3, RandomPurpose::split);
        for (int64_t i = n - 1; i > 0; --i) std::swap(all[size_t(i)], all[rng.below(uint64_t(i + 1))]);
        labelled.assign(all.begin(), all.begin() + o.initial);
        std::sort(labelled.begin(), labelled.end());
      }
    };
    std::vector<bool> is_labelled;
    const bool last = round > 0 && int64_t(labelled.size()) >= o.budget;
    std::unique_ptr<PoolScorer> scorer;
    PoolScorer* scores = nullptr;
    {
      // The Trainer needs the rows before it runs; round 0's come from the data's size: prepare once.
      if (round == 0) {
        PreparedData data = prepare_data(job, "runs/cache");
        options.on_prepared(data);
        options.on_prepared = nullptr;
      }
      options.train_rows = labelled;
      is_labelled.assign(size_t(full.size()), false);
      for (int64_t r : labelled) is_labelled[size_t(r)] = true;
      for (int64_t i = 0; i < full.size(); ++i)
        if (!is_labelled[size_t(i)]) pool.push_back(i);
      if (!last && o.strategy != ActiveStrategy::random) {
        std::vector<int64_t> scored = pool;
        if (o.strategy == ActiveStrategy::coreset) scored.insert(scored.end(), labelled.begin(), labelled.end());
        scorer = std::make_unique<PoolScorer>(full, scored, o.strategy == ActiveStrategy::coreset);
        scores = scorer.get();
      }
    }
    Trainer trainer(job, options);
    if (scorer) trainer.add_technique(std::move(scorer));
    TrainOutcome outcome = trainer.run();
    if (outcome.exit_code != 0) throw InputError("active learning: round " + std::to_string(round) + " stopped (" + outcome.summary.status + ")");
    const RunSummary& s = outcome.summary;
    ActiveRound r;
    r.labels = int64_t(labelled.size());
    r.test_accuracy = s.metrics.test_accuracy.value_or(s.metrics.val_accuracy.value_or(0.0));
    r.wall_s = s.cost.wall_s, r.usd = s.cost.usd.value, r.kwh = s.cost.kwh.value, r.run_id = s.run_id;
    result.rounds.push_back(r);
    result.wall_s += r.wall_s, result.usd += r.usd, result.kwh += r.kwh;
    if (o.target_accuracy && !result.labels_to_target && r.test_accuracy >= *o.target_accuracy) result.labels_to_target = r.labels;
    if (!o.quiet && log)
      std::fprintf(log, "  %s seed %llu round %lld: %lld labels, test accuracy %.2f%% (run %s, %.1f s)\n",
                   name_of(o.strategy), (unsigned long long)seed, (long long)round, (long long)r.labels,
                   100 * r.test_accuracy, r.run_id.c_str(), r.wall_s);
    if (last || int64_t(labelled.size()) >= o.budget) break;
    // The next K to label.
    const auto select_start = std::chrono::steady_clock::now();
    const int64_t k = std::min<int64_t>(o.batch, o.budget - int64_t(labelled.size()));
    std::vector<int64_t> chosen;
    if (o.strategy == ActiveStrategy::random) {
      Rng rng(seed, 4 + uint64_t(round), RandomPurpose::split);
      for (int64_t i = 0; i < k; ++i) {
        const int64_t j = i + int64_t(rng.below(uint64_t(int64_t(pool.size()) - i)));
        std::swap(pool[size_t(i)], pool[size_t(j)]);
        chosen.push_back(pool[size_t(i)]);
      }
    } else if (o.strategy == ActiveStrategy::coreset) {
      const int64_t P = int64_t(pool.size());
      std::vector<int64_t> candidates(static_cast<size_t>(P)), centers;
      std::iota(candidates.begin(), candidates.end(), 0);
      for (int64_t i = P; i < scores->embeddings_out_.size(0); ++i) centers.push_back(i);
      for (int64_t i : k_center_greedy(scores->embeddings_out_, centers, candidates, k)) chosen.push_back(pool[size_t(i)]);
    } else {
      const std::vector<double> u = uncertainty(scores->logits_, o.strategy);
      std::vector<int64_t> order(pool.size());
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return u[size_t(a)] > u[size_t(b)]; });
      for (int64_t i = 0; i < k; ++i) chosen.push_back(pool[size_t(order[size_t(i)])]);
    }
    labelled.insert(labelled.end(), chosen.begin(), chosen.end());
    std::sort(labelled.begin(), labelled.end());
    result.rounds.back().select_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - select_start).count();
    result.select_s += result.rounds.back().select_s;
  }
  return result;
}

}  // namespace frugal::train
