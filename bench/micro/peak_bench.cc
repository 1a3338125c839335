// The machine's peak f32 and bf16 FLOP/s from an FMA loop on 1 and 2 threads: the denominator of
// the training GFLOP/s ratios in bench/RESULTS.md and of MFU for the `local` instance.
#include <benchmark/benchmark.h>

#include "frugal/cost/peak.h"

namespace {

void BM_peak(benchmark::State& state) {
  frugal::cost::PeakFlops peak;
  for (auto _ : state) peak = frugal::cost::measure_peak_flops(int(state.range(0)), 0.2);
  state.counters["fp32_GFLOP/s"] = peak.fp32 / 1e9;
  state.counters["bf16_GFLOP/s"] = peak.bf16 / 1e9;
}
BENCHMARK(BM_peak)->Arg(1)->Arg(2)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
