// Threads for the hot loops. frugal uses OpenMP, the runtime oneDNN itself is built with on
// Debian, so both share one pool and one thread count. Loops split work in fixed static chunks
// so results never depend on thread timing.
#pragma once

#include <cstdint>

namespace frugal {

// Sets the number of threads used by frugal kernels and oneDNN (0 = all cores).
void set_num_threads(int threads);
int num_threads();

// Runs body(begin, end) over [0, n) split into at most num_threads() contiguous static chunks,
// each at least `grain` long. Chunk boundaries depend only on n, grain and the thread count.
template <class Body>
void parallel_for(int64_t n, int64_t grain, Body&& body) {
  if (n <= 0) return;
  int threads = num_threads();
  int64_t chunks = (n + grain - 1) / (grain > 0 ? grain : 1);
  if (threads <= 1 || chunks <= 1) {
    body(int64_t{0}, n);
    return;
  }
  if (chunks > threads) chunks = threads;
#pragma omp parallel for num_threads(chunks) schedule(static, 1)
  for (int64_t c = 0; c < chunks; ++c) {
    int64_t begin = n * c / chunks, end = n * (c + 1) / chunks;
    body(begin, end);
  }
}

}  // namespace frugal
