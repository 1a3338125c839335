// How federated averaging (federated.h) deals the training rows out to its clients: IID (a seeded
// shuffle cut into equal shards) or non-IID by Dirichlet(alpha) label proportions (Hsu et al. 2019:
// for each class, the clients' shares drawn from Dirichlet(alpha); small alpha = few classes per
// client). Deterministic: counter-based random numbers keyed by the seed, never by call order.
// Limits: every client gets at least one row (rows move from the largest shard to empty ones), so a
// client may hold a class that its draw gave nothing.
#pragma once

#include <cstdint>
#include <vector>

#include "frugal/base/rng.h"

namespace frugal::train {

// Shards of rows 0..rows-1, one per client, each sorted; sizes differ by at most one. Needs
// 1 <= clients <= rows (InternalError otherwise: the caller checks the job).
std::vector<std::vector<int64_t>> split_iid(int64_t rows, int64_t clients, uint64_t seed);

// Shards by label (labels[i] in 0..classes-1): each class's rows, shuffled, cut by proportions drawn
// from a symmetric Dirichlet(alpha) over the clients; then no client is left empty. Each shard sorted.
std::vector<std::vector<int64_t>> split_dirichlet(const std::vector<int64_t>& labels, int64_t classes, int64_t clients,
                                                  double alpha, uint64_t seed);

// One Gamma(shape, 1) draw, returned as its natural log so that tiny draws of small shapes (alpha
// 0.01 gives values like 1e-100) keep their ratios: Marsaglia & Tsang (2000), boosted for shape < 1.
double log_gamma_draw(double shape, Rng& rng);

// How far the clients' label distributions are from the whole training set's: the mean over
// clients of the total-variation distance (0 = every client has the global mix, -> 1 = disjoint).
double label_skew(const std::vector<std::vector<int64_t>>& shards, const std::vector<int64_t>& labels, int64_t classes);

}  // namespace frugal::train
