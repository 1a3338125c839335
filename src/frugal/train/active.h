// Pool-based active learning (`frugal active`): from N0 seeded labelled training rows, each round
// trains a FRESH model from the job on the labelled rows only (a real run: recorded, costed; Munjal
// et al. 2022 find fresh training the robust baseline), scores the unlabelled pool with that model
// (entropy, margin, least confidence of the softmax; core-set = k-center greedy on penultimate-layer
// embeddings, Sener & Savarese 2018; random = the control) and labels the top K (the oracle: the
// held-back real labels), until the budget. Limits: classification with mlp/cnn models; the pool is
// the prepared training split; the pool scoring's forward FLOPs are in the rounds' wall time, not
// counted in their FLOPs.
#pragma once

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "frugal/tensor/tensor.h"

namespace frugal::train {

enum class ActiveStrategy { entropy, margin, least_confidence, coreset, random };
const char* name_of(ActiveStrategy strategy);
ActiveStrategy active_strategy(const std::string& name);  // InputError naming the choices

// Uncertainty per row from logits (N, C): higher = more uncertain. entropy: -sum p log p; margin:
// -(p1 - p2) of the two largest; least_confidence: 1 - max p.
std::vector<double> uncertainty(const Tensor& logits, ActiveStrategy strategy);

// k-center greedy: `k` rows of `candidates` chosen one at a time as the farthest (Euclidean) from
// the centers so far (`centers` to start; with none, the first pick is candidates[0]). points: (N, D).
std::vector<int64_t> k_center_greedy(const Tensor& points, const std::vector<int64_t>& centers,
                                     const std::vector<int64_t>& candidates, int64_t k);

struct ActiveOptions {
  int64_t budget = 0, initial = 0, batch = 0;
  ActiveStrategy strategy = ActiveStrategy::entropy;
  std::optional<double> target_accuracy;
  std::string out_dir;  // rounds in <out_dir>/seed<seed>/round<r>
  bool quiet = false;
};

struct ActiveRound {
  int64_t labels = 0;
  double test_accuracy = 0, wall_s = 0, usd = 0, kwh = 0;
  double select_s = 0;  // choosing the next rows after the run (k-center greedy, sorting): outside its bill
  std::string run_id;
};

struct ActiveResult {
  uint64_t seed = 0;
  std::vector<ActiveRound> rounds;
  std::optional<int64_t> labels_to_target;  // the first round's labels at or past the target
  double wall_s = 0, usd = 0, kwh = 0;      // the rounds' runs summed
  double select_s = 0;                      // the selections after them, summed (not in any run's bill)
  nlohmann::json to_json() const;
};

// One strategy with one seed: the job loaded with `sets` and run.seed = seed (model init and the
// initial labelled rows). Prints one line per round to `log` unless quiet.
ActiveResult run_active_learning(const std::string& job_path, std::vector<std::string> sets, uint64_t seed,
                                 const ActiveOptions& options, FILE* log);

}  // namespace frugal::train
