// The client splits of federated averaging (see federated_split.h).
#include "frugal/train/parallel/federated_split.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "frugal/base/error.h"

namespace frugal::train {

namespace {

// Streams of the splits' random numbers (RandomPurpose::split), apart from active learning's (3, 4+).
constexpr uint64_t kIidStream = 0xFED0001;
constexpr uint64_t kDirichletStream = 0xFED0002;

void shuffle(std::vector<int64_t>& v, Rng& rng) {
  for (int64_t i = int64_t(v.size()) - 1; i > 0; --i) std::swap(v[size_t(i)], v[rng.below(uint64_t(i + 1))]);
}

double standard_normal(Rng& rng) {  // Box-Muller in double (Rng::normal is float)
  const double u1 = 1.0 - rng.uniform_double(), u2 = rng.uniform_double();  // u1 in (0, 1]
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

// Moves one row at a time from the largest shard (the first of equals) to each empty one.
void fill_empty(std::vector<std::vector<int64_t>>& shards) {
  for (auto& shard : shards) {
    if (!shard.empty()) continue;
    auto largest = std::max_element(shards.begin(), shards.end(),
                                    [](const auto& a, const auto& b) { return a.size() < b.size(); });
    FRUGAL_CHECK(largest->size() > 1, "fewer rows than clients");
    shard.push_back(largest->back());
    largest->pop_back();
  }
}

}  // namespace

std::vector<std::vector<int64_t>> split_iid(int64_t rows, int64_t clients, uint64_t seed) {
  FRUGAL_CHECK(clients >= 1 && clients <= rows, "split_iid needs 1 <= clients <= rows");
  std::vector<int64_t> order(static_cast<size_t>(rows));
  std::iota(order.begin(), order.end(), 0);
  Rng rng(seed, kIidStream, RandomPurpose::split);
  shuffle(order, rng);
  std::vector<std::vector<int64_t>> shards(static_cast<size_t>(clients));
  int64_t start = 0;
  for (int64_t k = 0; k < clients; ++k) {
    const int64_t size = rows / clients + (k < rows % clients ? 1 : 0);
    shards[size_t(k)].assign(order.begin() + start, order.begin() + start + size);
    std::sort(shards[size_t(k)].begin(), shards[size_t(k)].end());
    start += size;
  }
  return shards;
}

double log_gamma_draw(double shape, Rng& rng) {
  // Gamma(a) = Gamma(a + 1) * U^(1/a) for a < 1; in logs, so U^(1/a) never underflows to 0.
  const double boost = shape < 1 ? std::log(1.0 - rng.uniform_double()) / shape : 0.0;
  const double a = shape < 1 ? shape + 1 : shape;
  const double d = a - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    const double x = standard_normal(rng);
    double v = 1.0 + c * x;
    if (v <= 0) continue;
    v = v * v * v;
    const double u = 1.0 - rng.uniform_double();
    if (std::log(u) < 0.5 * x * x + d - d * v + d * std::log(v)) return std::log(d * v) + boost;
  }
}

std::vector<std::vector<int64_t>> split_dirichlet(const std::vector<int64_t>& labels, int64_t classes, int64_t clients,
                                                  double alpha, uint64_t seed) {
  const int64_t rows = int64_t(labels.size());
  FRUGAL_CHECK(clients >= 1 && clients <= rows, "split_dirichlet needs 1 <= clients <= rows");
  FRUGAL_CHECK(alpha > 0, "split_dirichlet needs alpha > 0");
  std::vector<std::vector<int64_t>> by_class(static_cast<size_t>(classes));
  for (int64_t i = 0; i < rows; ++i) {
    FRUGAL_CHECK(labels[size_t(i)] >= 0 && labels[size_t(i)] < classes, "label outside 0..classes-1");
    by_class[size_t(labels[size_t(i)])].push_back(i);
  }
  std::vector<std::vector<int64_t>> shards(static_cast<size_t>(clients));
  std::vector<double> log_draw(static_cast<size_t>(clients));
  for (int64_t c = 0; c < classes; ++c) {
    std::vector<int64_t>& members = by_class[size_t(c)];
    if (members.empty()) continue;
    Rng rng(seed, mix_key(kDirichletStream, uint64_t(c)), RandomPurpose::split);  // one stream per class
    shuffle(members, rng);
    // Proportions p_k = g_k / sum g, g_k ~ Gamma(alpha): normalized in logs against the largest draw.
    for (double& g : log_draw) g = log_gamma_draw(alpha, rng);
    const double top = *std::max_element(log_draw.begin(), log_draw.end());
    double sum = 0;
    for (double g : log_draw) sum += std::exp(g - top);
    // Client k gets the rows between the rounded cumulative shares before and after it.
    const int64_t n = int64_t(members.size());
    double cumulative = 0;
    int64_t start = 0;
    for (int64_t k = 0; k < clients; ++k) {
      cumulative += std::exp(log_draw[size_t(k)] - top) / sum;
      const int64_t end = k == clients - 1 ? n : std::min<int64_t>(n, std::llround(cumulative * double(n)));
      for (int64_t i = start; i < end; ++i) shards[size_t(k)].push_back(members[size_t(i)]);
      start = std::max(start, end);
    }
  }
  fill_empty(shards);
  for (auto& shard : shards) std::sort(shard.begin(), shard.end());
  return shards;
}

double label_skew(const std::vector<std::vector<int64_t>>& shards, const std::vector<int64_t>& labels, int64_t classes) {
  std::vector<double> global(static_cast<size_t>(classes), 0.0);
  for (int64_t y : labels) global[size_t(y)] += 1.0 / double(labels.size());
  double total = 0;
  for (const auto& shard : shards) {
    std::vector<double> local(static_cast<size_t>(classes), 0.0);
    for (int64_t row : shard) local[size_t(labels[size_t(row)])] += 1.0 / double(shard.size());
    double distance = 0;
    for (int64_t c = 0; c < classes; ++c) distance += std::abs(local[size_t(c)] - global[size_t(c)]);
    total += 0.5 * distance;
  }
  return shards.empty() ? 0.0 : total / double(shards.size());
}

}  // namespace frugal::train
