// This machine's peak arithmetic rate, measured with a loop of independent fused multiply-adds on
// every thread (AVX-512 FMA for f32, AVX512-BF16 dot products for bf16). The denominator of MFU
// for the `local` instance, whose peak no catalog can know. Limits: x86-64 with AVX-512 gives the
// vector peak; elsewhere a portable loop gives what the compiler's vectorization reaches.
#pragma once

namespace frugal::cost {

struct PeakFlops {
  double fp32 = 0;  // FLOP/s, a multiply-add counted as 2
  double bf16 = 0;  // FLOP/s of AVX512-BF16 dot products (f32 accumulation); 0 if the CPU has none.
                    // Not the bf16 ceiling on CPUs with AMX tiles, which oneDNN uses for matmul.
  int threads = 0;
};

// Runs each loop for about `seconds` on `threads` threads (OpenMP) and returns the best rate of a
// few repetitions.
PeakFlops measure_peak_flops(int threads, double seconds = 0.1);

}  // namespace frugal::cost
