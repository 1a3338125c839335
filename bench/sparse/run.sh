#!/bin/sh
# Sparse linear kernel vs oneDNN dense f32 on the MLP's and the GPT's Linear shapes: densities
# 1-50%, batches 1-1024, medians of alternated rounds (cells: sparse us and dense/sparse speedup).
# Usage: bench/sparse/run.sh [build dir] [rounds]. Takes ~3-6 min on 2 cores.
set -eu
build=${1:-build}
rounds=${2:-5}
ninja -C "$build" sparse_bench >/dev/null
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) threads; $rounds alternated rounds, medians"
echo
"$build/bench/sparse_bench" "$rounds"
