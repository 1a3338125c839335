#include "frugal/base/parallel.h"

#include <omp.h>
#include <thread>

namespace frugal {

namespace {
int g_threads = 0;
}

void set_num_threads(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::thread::hardware_concurrency());
  if (threads <= 0) threads = 1;
  g_threads = threads;
  omp_set_num_threads(threads);
}

int num_threads() {
  if (g_threads == 0) g_threads = omp_get_max_threads();
  return g_threads;
}

}  // namespace frugal
