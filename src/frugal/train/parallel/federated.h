// Federated averaging (McMahan et al. 2017, FedAvg) and FedProx (Li et al. 2020) for `frugal train`
// with [federated]: the training split dealt out to `clients` (federated_split.h); each round a
// seeded sample of clients trains local_epochs on its own shard from the global weights, with the
// job's optimizer built fresh for every client and round (no optimizer state crosses rounds, as
// clients of a real federation keep none), FedProx adding mu (w - w_global) to every gradient; the
// server averages the clients' weights and buffers (BatchNorm's running statistics included)
// weighted by shard size, in ascending client order, so the same seed gives the same bits whether
// the clients are simulated in one process or spread over MPI ranks (client i of a round on rank
// i % size). Limits: classification data in memory; the clients' local loop is plain (forward,
// loss, backward, FedProx term, optimizer step): the training loop's techniques (clipping, EMA,
// early stopping, budgets, ...) do not act in it; [schedule] counts rounds; a checkpoint per round.
#pragma once

#include <cstdint>
#include <vector>

#include "frugal/train/job.h"
#include "frugal/train/trainer.h"

namespace frugal::train {

// The server's average: out[j] = sum_i (weights[i] / sum(weights)) * models[i][j], accumulated in
// double in the order given; models[i] points at n values. weights > 0.
std::vector<float> weighted_average(const std::vector<const float*>& models, const std::vector<int64_t>& weights,
                                    int64_t n);

// The clients of round `round` (0-based): per_round of 0..clients-1 drawn without replacement from
// (seed, round), in ascending order.
std::vector<int64_t> sample_clients(int64_t clients, int64_t per_round, uint64_t seed, int64_t round);

// `frugal train` of a job with [federated] (run_training dispatches here): rounds to the end or a
// preemption (exit 75 after the round's checkpoint); --resume auto goes on from the last round.
// InputError (exit 2) for a job it cannot run, before anything is written.
TrainOutcome run_federated(const JobSpec& job, const TrainOptions& options);

}  // namespace frugal::train
