#!/bin/sh
# Sparse linear kernel (CSR, kernels/cpu/sparse.h) vs oneDNN dense f32 on the MLP's and the GPT's
# Linear shapes: densities 1-50%, batches 1-1024, medians of alternated rounds (each sample the
# fastest of 5 timings of ~1 ms). Cells: sparse us (dense / sparse). Both thread counts: all cores,
# then 1. Usage: bench/sparse/run.sh [build dir] [rounds]. ~1-3 min on 2 cores.
set -eu
build=${1:-build}
rounds=${2:-5}
ninja -C "$build" sparse_bench >/dev/null
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores; $rounds alternated rounds, medians"
for threads in 0 1; do
  echo
  if [ "$threads" = 0 ]; then echo "Threads: all ($(nproc))"; else echo "Threads: 1"; fi
  echo
  "$build/bench/sparse_bench" "$rounds" "$threads"
done
