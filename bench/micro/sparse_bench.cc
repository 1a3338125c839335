// The sparse linear kernel against oneDNN's dense f32 matmul on the MLP's and the GPT's Linear
// shapes, densities 1-50%, batches 1-1024: prints a markdown table of medians (alternated rounds)
// and the crossover density per shape and batch. Limits: random (unstructured) sparsity patterns;
// wall time on a possibly shared machine. Usage: sparse_bench [rounds] [threads, 0 = all] (bench/sparse/run.sh).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "frugal/base/parallel.h"
#include "frugal/kernels/cpu/dense.h"
#include "frugal/kernels/cpu/sparse.h"

using namespace frugal;

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

// Microseconds per call of fn: enough calls to fill ~1 ms, timed 5 times, the fastest kept (a
// time slice lost to another process on a shared machine inflates one sample, not the result).
template <class Fn>
double time_us(Fn&& fn) {
  fn();
  int calls = 1;
  for (;;) {
    const double start = now();
    for (int i = 0; i < calls; ++i) fn();
    if (now() - start > 1e-3 || calls >= 1 << 16) break;
    calls *= 2;
  }
  double best = 1e30;
  for (int sample = 0; sample < 5; ++sample) {
    const double start = now();
    for (int i = 0; i < calls; ++i) fn();
    best = std::min(best, (now() - start) / calls);
  }
  return 1e6 * best;
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 5;
  set_num_threads(argc > 2 ? std::atoi(argv[2]) : 0);
  struct Shape {
    const char* name;
    int64_t out, in;
  };
  const std::vector<Shape> shapes = {{"MLP fc1 784->256", 256, 784},
                                     {"MLP fc2 256->128", 128, 256},
                                     {"GPT mlp.fc 128->512", 512, 128},
                                     {"GPT mlp.proj 512->128", 128, 512}};
  const std::vector<int64_t> batches = {1, 16, 64, 256, 1024};
  const std::vector<double> densities = {0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5};
  std::printf("| Linear (out x in) | batch | dense us |");
  for (double d : densities) std::printf(" %g%% |", 100 * d);
  std::printf(" crossover |\n|---|---:|---:|");
  for (size_t i = 0; i < densities.size(); ++i) std::printf("---:|");
  std::printf("---|\n");
  std::mt19937 gen(1);
  std::uniform_real_distribution<float> value(-1, 1), keep(0, 1);
  for (const Shape& s : shapes) {
    // One weight per density (the dense run reads the 1% one: dense time does not depend on zeros).
    std::vector<std::vector<float>> weights;
    std::vector<kernels::SparseMatrix> sparse;
    for (double d : densities) {
      std::vector<float> w(size_t(s.out * s.in));
      for (float& v : w) v = keep(gen) < d ? value(gen) : 0.0f;
      sparse.push_back(kernels::to_sparse(w.data(), s.out, s.in));
      weights.push_back(std::move(w));
    }
    std::vector<float> bias(size_t(s.out));
    for (float& v : bias) v = value(gen);
    for (int64_t n : batches) {
      std::vector<float> x(size_t(n * s.in)), y(size_t(n * s.out));
      for (float& v : x) v = value(gen);
      kernels::MatmulDims dims;
      dims.m = n, dims.n = s.out, dims.k = s.in, dims.transpose_b = true, dims.lda = s.in, dims.ldb = s.in,
      dims.ldc = s.out;
      std::vector<double> dense_us;
      std::vector<std::vector<double>> sparse_us(densities.size());
      for (int r = 0; r < rounds; ++r) {  // alternated: dense, then each density, every round
        dense_us.push_back(time_us([&] { kernels::cpu::matmul(x.data(), weights[0].data(), bias.data(), y.data(), dims); }));
        for (size_t i = 0; i < densities.size(); ++i)
          sparse_us[i].push_back(time_us([&] { kernels::cpu::sparse_linear(x.data(), n, sparse[i], bias.data(), y.data()); }));
      }
      const double dense = median(dense_us);
      std::printf("| %s | %lld | %.1f |", s.name, (long long)n, dense);
      double crossover = 0;
      bool winning = true;
      for (size_t i = 0; i < densities.size(); ++i) {
        const double t = median(sparse_us[i]);
        std::printf(" %.1f (%.2fx) |", t, dense / t);
        if (winning && t < dense) crossover = densities[i];
        else winning = false;
      }
      if (crossover > 0) std::printf(" sparse faster up to %g%% |\n", 100 * crossover);
      else std::printf(" dense always |\n");
      std::fflush(stdout);
    }
  }
  return 0;
}
