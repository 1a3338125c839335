// Gradient compression for data-parallel training (train/parallel/compression.h): each method over a
// thread group (one thread per rank): the result is the same on every rank and what the method
// promises (bf16: the rank-order sum of bf16-rounded values; topk: exact at ratio 1, error feedback
// conserves every entry; PowerSGD: a low-rank sum reproduced; local SGD: averages at every H-th
// step), the bytes sent match each method's formula, and a checkpoint round trip continues bit for bit.
#include "frugal/train/parallel/compression.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <mutex>
#include <thread>

#include "frugal/base/rng.h"
#include "frugal/optim/optimizer.h"
#include "frugal/tensor/dtype.h"
#include "frugal/train/technique.h"

namespace frugal::train {
namespace {

// Runs body(comm) on each rank of a thread group, one thread per rank.
void on_ranks(int size, const std::function<void(dist::Communicator&)>& body) {
  auto comms = dist::make_thread_group(size);
  std::vector<std::thread> threads;
  for (auto& comm : comms) threads.emplace_back([&, c = comm.get()] { body(*c); });
  for (auto& t : threads) t.join();
}

DistSpec spec_of(Compression c) {
  DistSpec s;
  s.compression = c;
  return s;
}

// Rank r's gradient of parameter p at step t: normal values of a Philox stream, scaled per rank so
// that sums depend on the order of addition.
Tensor gradient(int rank, size_t p, int64_t t, const Shape& shape) {
  Tensor g = Tensor::empty(shape);
  Rng rng(17, uint64_t(rank * 1000 + int(p) * 10 + int(t)));
  const float scale = rank % 2 ? 3.7f : 0.013f;
  float* d = g.data<float>();
  for (int64_t i = 0; i < g.numel(); ++i) d[i] = rng.normal() * scale;
  return g;
}

const std::vector<Shape> kShapes = {{12, 7}, {7}, {5, 2, 3}};

std::vector<Tensor> gradients(int rank, int64_t t) {
  std::vector<Tensor> out;
  for (size_t p = 0; p < kShapes.size(); ++p) out.push_back(gradient(rank, p, t, kShapes[p]));
  return out;
}

std::vector<float> values(const Tensor& t) { return t.contiguous().to_vector<float>(); }

// Every rank's results, indexed [rank][param], filled by the rank threads.
struct Results {
  std::mutex mutex;
  std::vector<std::vector<std::vector<float>>> by_rank;
  explicit Results(int size) : by_rank(size_t(size)) {}
  void put(int rank, const std::vector<Tensor>& grads) {
    std::lock_guard lock(mutex);
    by_rank[size_t(rank)].clear();
    for (const Tensor& g : grads) by_rank[size_t(rank)].push_back(g.defined() ? values(g) : std::vector<float>{});
  }
  void expect_same_on_every_rank() const {
    for (size_t r = 1; r < by_rank.size(); ++r) EXPECT_EQ(by_rank[r], by_rank[0]) << "rank " << r;
  }
};

TEST(Bf16Sum, IsTheRankOrderSumOfBf16RoundedGradientsOnEveryRank) {
  for (int size : {2, 3}) {
    Results results(size);
    std::vector<int64_t> sent(static_cast<size_t>(size));
    DistSpec spec = spec_of(Compression::bf16);
    spec.error_feedback = false;
    on_ranks(size, [&](dist::Communicator& comm) {
      auto c = make_compressor(spec);
      EXPECT_EQ(c->name(), "bf16");
      auto grads = gradients(comm.rank(), 0);
      c->reduce(grads, comm, 0);
      results.put(comm.rank(), grads);
      sent[size_t(comm.rank())] = comm.traffic().bytes_sent;
    });
    results.expect_same_on_every_rank();
    int64_t n = 0;
    for (size_t p = 0; p < kShapes.size(); ++p) {
      n += shape_numel(kShapes[p]);
      std::vector<float> expected = values(gradient(0, p, 0, kShapes[p]));
      for (float& v : expected) v = bf16_to_float(float_to_bf16(v));
      for (int r = 1; r < size; ++r) {
        std::vector<float> g = values(gradient(r, p, 0, kShapes[p]));
        for (size_t i = 0; i < g.size(); ++i) expected[i] += bf16_to_float(float_to_bf16(g[i]));
      }
      EXPECT_EQ(results.by_rank[0][p], expected) << "size " << size << " param " << p;
    }
    // One allgather of n bf16 values: (size - 1) copies of 2 n bytes.
    for (int64_t b : sent) EXPECT_EQ(b, int64_t(size - 1) * n * 2);
  }
}

TEST(Bf16Sum, ErrorFeedbackAddsTheRoundingErrorToTheNextStep) {
  Results results(2);
  on_ranks(2, [&](dist::Communicator& comm) {
    auto c = make_compressor(spec_of(Compression::bf16));
    auto g0 = gradients(comm.rank(), 0);
    c->reduce(g0, comm, 0);
    auto g1 = gradients(comm.rank(), 1);
    c->reduce(g1, comm, 1);
    results.put(comm.rank(), g1);
  });
  results.expect_same_on_every_rank();
  // Step 1 sends bf16(g1 + (g0 - bf16(g0))) from each rank.
  for (size_t p = 0; p < kShapes.size(); ++p) {
    std::vector<float> expected(static_cast<size_t>(shape_numel(kShapes[p])), 0.0f);
    for (int r = 0; r < 2; ++r) {
      std::vector<float> a = values(gradient(r, p, 0, kShapes[p])), b = values(gradient(r, p, 1, kShapes[p]));
      for (size_t i = 0; i < a.size(); ++i) {
        const float v = b[i] + (a[i] - bf16_to_float(float_to_bf16(a[i])));
        const float sent = bf16_to_float(float_to_bf16(v));
        expected[i] = r == 0 ? sent : expected[i] + sent;
      }
    }
    EXPECT_EQ(results.by_rank[0][p], expected) << "param " << p;
  }
}

TEST(TopK, RatioOneIsTheExactRankOrderSum) {
  DistSpec spec = spec_of(Compression::topk);
  spec.topk_ratio = 1;
  Results results(3);
  on_ranks(3, [&](dist::Communicator& comm) {
    auto c = make_compressor(spec);
    auto grads = gradients(comm.rank(), 0);
    c->reduce(grads, comm, 0);
    results.put(comm.rank(), grads);
  });
  results.expect_same_on_every_rank();
  for (size_t p = 0; p < kShapes.size(); ++p) {
    std::vector<float> expected = values(gradient(0, p, 0, kShapes[p]));
    for (int r = 1; r < 3; ++r) {
      std::vector<float> g = values(gradient(r, p, 0, kShapes[p]));
      for (size_t i = 0; i < g.size(); ++i) expected[i] += g[i];
    }
    EXPECT_EQ(results.by_rank[0][p], expected) << "param " << p;
  }
}

// The residuals of every rank, as rank 0's save_state gathers them: [rank][param].
std::vector<std::vector<std::vector<float>>> residuals(const TechniqueState& state, int size) {
  std::vector<std::vector<std::vector<float>>> out(size_t(size), std::vector<std::vector<float>>(kShapes.size()));
  for (const auto& [name, t] : state.tensors())
    for (int r = 0; r < size; ++r)
      for (size_t p = 0; p < kShapes.size(); ++p)
        if (name == "compression.rank" + std::to_string(r) + ".residual." + std::to_string(p)) out[size_t(r)][p] = values(t);
  return out;
}

TEST(TopK, SendsTheLargestEntriesAndErrorFeedbackConservesEveryEntry) {
  // Rank 1's gradients are zero, so the sum is what rank 0 sent: sent + residual must equal
  // gradient + old residual exactly, entry by entry, over two steps.
  DistSpec spec = spec_of(Compression::topk);
  spec.topk_ratio = 0.1;
  Results step0(2), step1(2);
  TechniqueState saved0, saved1;
  std::vector<int64_t> sent(2);
  on_ranks(2, [&](dist::Communicator& comm) {
    auto c = make_compressor(spec);
    auto zero_unless_rank0 = [&](int64_t t) {
      auto g = gradients(0, t);
      if (comm.rank() != 0)
        for (Tensor& x : g) x.zero();
      return g;
    };
    auto g0 = zero_unless_rank0(0);
    c->reduce(g0, comm, 0);
    step0.put(comm.rank(), g0);
    sent[size_t(comm.rank())] = comm.traffic().bytes_sent;
    c->save_state(saved0, comm);
    auto g1 = zero_unless_rank0(1);
    c->reduce(g1, comm, 1);
    step1.put(comm.rank(), g1);
    c->save_state(saved1, comm);
  });
  step0.expect_same_on_every_rank();
  step1.expect_same_on_every_rank();
  auto res0 = residuals(saved0, 2), res1 = residuals(saved1, 2);
  int64_t pairs = 0;
  for (size_t p = 0; p < kShapes.size(); ++p) {
    const int64_t n = shape_numel(kShapes[p]), k = int64_t(std::ceil(0.1 * double(n)));
    pairs += k;
    std::vector<float> g0 = values(gradient(0, p, 0, kShapes[p])), g1 = values(gradient(0, p, 1, kShapes[p]));
    const auto& s0 = step0.by_rank[0][p];
    const auto& s1 = step1.by_rank[0][p];
    int64_t nonzero = 0;
    float smallest_sent = INFINITY, largest_kept = 0;
    for (size_t i = 0; i < size_t(n); ++i) {
      EXPECT_EQ(s0[i] + res0[0][p][i], g0[i]) << "step 0, param " << p << " entry " << i;
      EXPECT_EQ(s1[i] + res1[0][p][i], g1[i] + res0[0][p][i]) << "step 1, param " << p << " entry " << i;
      EXPECT_TRUE(s0[i] == 0 || res0[0][p][i] == 0);  // each entry is sent or kept, not split
      if (s0[i] != 0) {
        ++nonzero;
        smallest_sent = std::min(smallest_sent, std::fabs(s0[i]));
      }
      largest_kept = std::max(largest_kept, std::fabs(res0[0][p][i]));
      EXPECT_EQ(res0[1][p][i], 0.0f);  // rank 1 had nothing to keep
    }
    EXPECT_EQ(nonzero, k) << "param " << p;
    EXPECT_GE(smallest_sent, largest_kept) << "param " << p;
  }
  // One allgather of (i32, f32) pairs: k * 8 bytes per tensor per step at 2 ranks.
  for (int64_t b : sent) EXPECT_EQ(b, pairs * 8);
}

TEST(Sign, SendsScaledSignsSumsThemInRankOrderAndKeepsTheRest) {
  std::vector<int64_t> sent(3);
  Results results(3);
  TechniqueState saved;
  on_ranks(3, [&](dist::Communicator& comm) {
    auto c = make_compressor(spec_of(Compression::sign));
    EXPECT_EQ(c->name(), "sign");
    auto grads = gradients(comm.rank(), 0);
    c->reduce(grads, comm, 0);
    results.put(comm.rank(), grads);
    sent[size_t(comm.rank())] = comm.traffic().bytes_sent;
    c->save_state(saved, comm);
  });
  results.expect_same_on_every_rank();
  auto res = residuals(saved, 3);
  int64_t message = 0;
  for (size_t p = 0; p < kShapes.size(); ++p) {
    const int64_t n = shape_numel(kShapes[p]);
    message += 4 + (n + 7) / 8;
    std::vector<float> expected(static_cast<size_t>(n), 0.0f);
    for (int r = 0; r < 3; ++r) {
      std::vector<float> g = values(gradient(r, p, 0, kShapes[p]));
      double l1 = 0;
      for (float v : g) l1 += std::fabs(double(v));
      const float scale = float(l1 / double(n));
      for (size_t i = 0; i < g.size(); ++i) {
        const float v = g[i] >= 0 ? scale : -scale;
        expected[i] = r == 0 ? v : expected[i] + v;
        EXPECT_EQ(res[size_t(r)][p][i], g[i] - v) << "rank " << r << " param " << p << " entry " << i;
      }
    }
    EXPECT_EQ(results.by_rank[0][p], expected) << "param " << p;
  }
  // One allgather of each tensor's f32 scale and bits: (size - 1) copies.
  for (int64_t b : sent) EXPECT_EQ(b, 2 * message);
}

// A (rows x cols) matrix of rank 2, U V_r^T with U shared by the ranks, so the ranks' sum has rank 2.
Tensor low_rank(int rank, int64_t rows, int64_t cols) {
  Rng u_rng(3, 0), v_rng(4, uint64_t(rank));
  std::vector<float> u(static_cast<size_t>(rows * 2)), v(size_t(cols * 2));
  for (float& x : u) x = u_rng.normal();
  for (float& x : v) x = v_rng.normal();
  Tensor m = Tensor::empty({rows, cols});
  float* d = m.data<float>();
  for (int64_t a = 0; a < rows; ++a)
    for (int64_t c = 0; c < cols; ++c) d[a * cols + c] = u[size_t(a * 2)] * v[size_t(c * 2)] + u[size_t(a * 2 + 1)] * v[size_t(c * 2 + 1)];
  return m;
}

TEST(PowerSgd, RankTwoReproducesASumOfRankTwoAndSendsPAndQ) {
  const int64_t rows = 40, cols = 30;
  DistSpec spec = spec_of(Compression::powersgd);
  spec.powersgd_rank = 2;
  Results results(2);
  std::vector<int64_t> sent(2);
  TechniqueState saved;
  on_ranks(2, [&](dist::Communicator& comm) {
    auto c = make_compressor(spec);
    std::vector<Tensor> grads = {low_rank(comm.rank(), rows, cols), gradient(comm.rank(), 1, 0, {7})};
    c->reduce(grads, comm, 0);
    results.put(comm.rank(), grads);
    sent[size_t(comm.rank())] = comm.traffic().bytes_sent;
    c->save_state(saved, comm);
  });
  results.expect_same_on_every_rank();
  std::vector<float> m0 = values(low_rank(0, rows, cols)), m1 = values(low_rank(1, rows, cols));
  float peak = 0;
  for (size_t i = 0; i < m0.size(); ++i) peak = std::max(peak, std::fabs(m0[i] + m1[i]));
  for (size_t i = 0; i < m0.size(); ++i)
    EXPECT_NEAR(results.by_rank[0][0][i], m0[i] + m1[i], 1e-5 * peak) << "entry " << i;
  // The bias goes exactly.
  std::vector<float> b0 = values(gradient(0, 1, 0, {7})), b1 = values(gradient(1, 1, 0, {7}));
  for (size_t i = 0; i < b0.size(); ++i) EXPECT_EQ(results.by_rank[0][1][i], b0[i] + b1[i]);
  // Residuals: what each rank's approximation missed, rounding only.
  auto res = residuals(saved, 2);
  for (int r = 0; r < 2; ++r)
    for (float x : res[size_t(r)][0]) EXPECT_LE(std::fabs(x), 1e-5 * peak);
  // allreduce_sum of P with the bias (rows * 2 + 7 values), then of Q (cols * 2): at 2 ranks, a rank
  // sends 2 blocks of ceil(n / 2) floats of each.
  const int64_t p_values = rows * 2 + 7, q_values = cols * 2;
  for (int64_t b : sent) EXPECT_EQ(b, 2 * ((p_values + 1) / 2 + (q_values + 1) / 2) * 4);
}

TEST(PowerSgd, AMatrixWhereRankDoesNotSaveBytesIsSummedExactly) {
  // r >= min(rows, cols) (here r = 5 > 3 columns) means r (rows + cols) >= rows * cols: P and Q would
  // be more values than the matrix, so it goes as it is, in rank order.
  DistSpec spec = spec_of(Compression::powersgd);
  spec.powersgd_rank = 5;
  Results results(2);
  std::vector<int64_t> sent(2);
  on_ranks(2, [&](dist::Communicator& comm) {
    auto c = make_compressor(spec);
    std::vector<Tensor> grads = {gradient(comm.rank(), 0, 0, {20, 3})};
    c->reduce(grads, comm, 0);
    results.put(comm.rank(), grads);
    sent[size_t(comm.rank())] = comm.traffic().bytes_sent;
  });
  results.expect_same_on_every_rank();
  std::vector<float> expected = values(gradient(0, 0, 0, {20, 3})), g1 = values(gradient(1, 0, 0, {20, 3}));
  for (size_t i = 0; i < g1.size(); ++i) expected[i] += g1[i];
  EXPECT_EQ(results.by_rank[0][0], expected);
  for (int64_t b : sent) EXPECT_EQ(b, 2 * 30 * 4);  // allreduce_sum of 60 values at 2 ranks
}

TEST(PowerSgd, WarmupStepsAreExactSums) {
  DistSpec spec = spec_of(Compression::powersgd);
  spec.warmup_steps = 1;
  Results results(2);
  on_ranks(2, [&](dist::Communicator& comm) {
    auto c = make_compressor(spec);
    auto grads = gradients(comm.rank(), 0);
    c->reduce(grads, comm, 0);
    results.put(comm.rank(), grads);
  });
  for (size_t p = 0; p < kShapes.size(); ++p) {
    std::vector<float> expected = values(gradient(0, p, 0, kShapes[p])), g1 = values(gradient(1, p, 0, kShapes[p]));
    for (size_t i = 0; i < g1.size(); ++i) expected[i] += g1[i];
    EXPECT_EQ(results.by_rank[1][p], expected);
  }
}

TEST(LocalSgd, AveragesTheParametersEveryHStepsAfterTheWarmup) {
  DistSpec spec = spec_of(Compression::local_sgd);
  spec.local_sgd_every = 3;
  spec.warmup_steps = 2;
  const int size = 2;
  std::mutex mutex;
  // [step][rank]: the parameters after after_step, and the bytes sent by then.
  std::vector<std::vector<std::vector<float>>> after(8, std::vector<std::vector<float>>(size));
  std::vector<std::vector<int64_t>> bytes(8, std::vector<int64_t>(size));
  on_ranks(size, [&](dist::Communicator& comm) {
    auto c = make_compressor(spec);
    Tensor w = Tensor::zeros({5, 4});
    std::vector<Tensor> params = {w};
    optim::SGD sgd(params, optim::SgdOptions{});
    for (int64_t step = 0; step < 8; ++step) {
      EXPECT_EQ(c->reduces_gradients(step), step < 2) << "step " << step;
      // Each rank moves its copy its own way: the average is the mean of the ranks' copies.
      float* d = w.data<float>();
      for (int64_t i = 0; i < w.numel(); ++i) d[i] += float(comm.rank() + 1) * float(i + step);
      c->after_step(params, sgd, comm, step);
      std::lock_guard lock(mutex);
      after[size_t(step)][size_t(comm.rank())] = values(w);
      bytes[size_t(step)][size_t(comm.rank())] = comm.traffic().bytes_sent;
    }
  });
  // Steps 0, 1 are warmup (exact sums happen in reduce, nothing to average); then H = 3: averages
  // after steps 4 and 7.
  int64_t expected_bytes = 0;
  for (int64_t step = 0; step < 8; ++step) {
    const bool averaged = step == 4 || step == 7;
    if (averaged) expected_bytes += 2 * (size - 1) * (20 / size) * 4;
    EXPECT_EQ(after[size_t(step)][0] == after[size_t(step)][1], averaged) << "step " << step;
    for (int r = 0; r < size; ++r) EXPECT_EQ(bytes[size_t(step)][size_t(r)], expected_bytes) << "step " << step;
  }
  // The average after step 4: the ranks' copies before it were sum_t (r + 1)(i + t) over t <= 4.
  for (int64_t i = 0; i < 20; ++i) {
    float mean = 0;
    for (int r = 0; r < size; ++r) {
      float v = 0;
      for (int64_t t = 0; t <= 4; ++t) v += float(r + 1) * float(i + t);
      mean = r == 0 ? v : mean + v;
    }
    EXPECT_EQ(after[4][0][size_t(i)], mean / float(size)) << "entry " << i;
  }
}

// Three steps without interruption vs two steps, a checkpoint, new compressors that load it, and the
// third step: the third step's sums must be bit-identical.
void expect_resume_bit_identical(const DistSpec& spec) {
  const int size = 2;
  Results straight(size), resumed(size);
  TechniqueState saved;
  on_ranks(size, [&](dist::Communicator& comm) {
    auto c = make_compressor(spec);
    for (int64_t t = 0; t < 3; ++t) {
      auto g = gradients(comm.rank(), t);
      c->reduce(g, comm, t);
      if (t == 1) c->save_state(saved, comm);
      if (t == 2) straight.put(comm.rank(), g);
    }
  });
  on_ranks(size, [&](dist::Communicator& comm) {
    auto c = make_compressor(spec);
    c->load_state(saved, comm);
    auto g = gradients(comm.rank(), 2);
    c->reduce(g, comm, 2);
    resumed.put(comm.rank(), g);
  });
  straight.expect_same_on_every_rank();
  EXPECT_EQ(resumed.by_rank, straight.by_rank) << name_of(spec.compression);
}

TEST(Compression, ResumeAtTheSameWorldSizeIsBitIdentical) {
  DistSpec topk = spec_of(Compression::topk);
  topk.topk_ratio = 0.2;
  expect_resume_bit_identical(topk);
  expect_resume_bit_identical(spec_of(Compression::bf16));
  DistSpec powersgd = spec_of(Compression::powersgd);
  powersgd.powersgd_rank = 1;
  expect_resume_bit_identical(powersgd);
  expect_resume_bit_identical(spec_of(Compression::sign));
}

TEST(Compression, ResumeAtAnotherWorldSizeStartsFromZero) {
  DistSpec spec = spec_of(Compression::topk);
  spec.topk_ratio = 0.2;
  TechniqueState saved;
  on_ranks(2, [&](dist::Communicator& comm) {
    auto c = make_compressor(spec);
    auto g = gradients(comm.rank(), 0);
    c->reduce(g, comm, 0);
    c->save_state(saved, comm);
  });
  EXPECT_EQ(saved.integer("compression.world_size"), 2);
  Results loaded(1), fresh(1);
  on_ranks(1, [&](dist::Communicator& comm) {
    auto a = make_compressor(spec), b = make_compressor(spec);
    a->load_state(saved, comm);
    auto ga = gradients(0, 1), gb = gradients(0, 1);
    a->reduce(ga, comm, 1);
    b->reduce(gb, comm, 1);
    loaded.put(0, ga);
    fresh.put(0, gb);
  });
  EXPECT_EQ(loaded.by_rank, fresh.by_rank);
}

// AdamW's first and second moments, concatenated.
std::vector<float> moments(const optim::Optimizer& optimizer) {
  std::vector<float> out;
  for (const auto& [key, t] : optimizer.state())
    if (key.find("exp_avg") != std::string::npos)
      for (float v : values(t)) out.push_back(v);
  return out;
}

TEST(LocalSgd, ResumePutsBackEachRanksOwnParametersAndOptimizerState) {
  DistSpec spec = spec_of(Compression::local_sgd);
  spec.local_sgd_every = 4;
  TechniqueState saved;
  std::vector<std::vector<float>> at_save(2), moments_at_save(2);
  std::mutex mutex;
  on_ranks(2, [&](dist::Communicator& comm) {
    auto c = make_compressor(spec);
    Tensor w = Tensor::zeros({3, 2});
    std::vector<Tensor> params = {w};
    optim::AdamW adam(params, optim::AdamWOptions{});
    c->start(params, adam, comm);
    // Opposite signs: AdamW's first step moves by lr whatever the gradient's size.
    w.set_grad(Tensor::full({3, 2}, comm.rank() == 0 ? 1.0 : -2.0));
    adam.step();
    c->after_step(params, adam, comm, 0);
    c->save_state(saved, comm);
    std::lock_guard lock(mutex);
    at_save[size_t(comm.rank())] = values(w);
    moments_at_save[size_t(comm.rank())] = moments(adam);
  });
  ASSERT_NE(at_save[0], at_save[1]);
  ASSERT_NE(moments_at_save[0], moments_at_save[1]);
  on_ranks(2, [&](dist::Communicator& comm) {
    auto c = make_compressor(spec);
    c->load_state(saved, comm);
    Tensor w = Tensor::zeros({3, 2});
    std::vector<Tensor> params = {w};
    optim::AdamW adam(params, optim::AdamWOptions{});
    c->start(params, adam, comm);
    EXPECT_EQ(values(w), at_save[size_t(comm.rank())]) << "rank " << comm.rank();
    EXPECT_EQ(moments(adam), moments_at_save[size_t(comm.rank())]) << "rank " << comm.rank();
  });
}

}  // namespace
}  // namespace frugal::train
