#include "frugal/base/parallel.h"

#include <omp.h>

#include "frugal/base/machine.h"

namespace frugal {

namespace {
int g_threads = 0;
}

void set_num_threads(int threads) {
  if (threads <= 0) threads = available_cores();  // the affinity mask and a cgroup quota, not all cores
  if (threads <= 0) threads = 1;
  g_threads = threads;
  omp_set_num_threads(threads);
}

int num_threads() {
  if (g_threads == 0) g_threads = omp_get_max_threads();
  return g_threads;
}

}  // namespace frugal
