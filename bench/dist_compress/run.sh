#!/usr/bin/env bash
# Gradient compression for data-parallel training (issue 19): each of METHODS (default "none bf16
# topk powersgd local_sgd sign") at 2 ranks (mpirun --oversubscribe -np 2, one thread per rank), on
#   - the Fashion-MNIST MLP example (12 epochs), batch_size 64 x grad_accum 2 (the example's global
#     batch of 128, one micro-batch per rank per step): test accuracy, bytes sent per rank;
#   - the KJV GPT example, batch_size 16 x grad_accum 2 (its global batch of 32), GPT_STEPS steps
#     (default the example's 1600): final val bits/char, bytes sent per rank.
# The settings of each method: TOPK_RATIO (0.01), POWERSGD_RANK (4), LOCAL_SGD_EVERY (16), WARMUP
# (0, compressed methods' exact first steps); MODELS="mlp gpt" (default both). Bytes are the run
# summary's techniques.data_parallel.bytes_sent_rank0 (the Communicator's count of the payload rank 0
# hands to others);
# the table gives them against method "none"'s. A rerun skips the runs already done. MPI_ARGS: more
# mpirun options (e.g. "--mca btl self,tcp" if shared memory misbehaves).
# On 2 cores: ~10 s per MLP run; a GPT run of 1600 steps ~4-6 min.
# Usage: bench/dist_compress/run.sh [FRUGAL_BINARY] [WORK_DIR] [SEEDS]
set -u
repo=$(cd "$(dirname "$0")/../.." && pwd)
frugal=$(realpath "${1:-$repo/build/frugal}")
work=${2:-/tmp/frugal-dist-compress}
seeds=${3:-1}
methods=${METHODS:-"none bf16 topk powersgd local_sgd sign"}
models=${MODELS:-"mlp gpt"}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mkdir -p "$work/runs" "$work/logs" && cd "$work" || exit 1
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
method_sets() {  # the [dist] keys of method $1
  local m=$1
  echo "--set dist.compression=\"$m\""
  case $m in
    topk) echo "--set dist.topk_ratio=${TOPK_RATIO:-0.01}" ;;
    powersgd) echo "--set dist.powersgd_rank=${POWERSGD_RANK:-4}" ;;
    local_sgd) echo "--set dist.local_sgd_every=${LOCAL_SGD_EVERY:-16}" ;;
  esac
  if [ "$m" != none ] && [ "${WARMUP:-0}" != 0 ]; then echo "--set dist.warmup_steps=$WARMUP"; fi
}
tag() {  # the run's name: method and its settings
  case $1 in
    topk) echo "topk-${TOPK_RATIO:-0.01}" ;;
    powersgd) echo "powersgd-r${POWERSGD_RANK:-4}" ;;
    local_sgd) echo "local_sgd-h${LOCAL_SGD_EVERY:-16}" ;;
    *) echo "$1" ;;
  esac
}
train() {  # train JOB OUT [--set ...]
  local job=$1 out=$2; shift 2
  [ -f "runs/$out/summary.json" ] && return
  rm -rf "runs/$out"
  # shellcheck disable=SC2086
  mpirun --oversubscribe -np 2 ${MPI_ARGS:-} "$frugal" train "$job" --out "runs/$out" --quiet \
    --set run.threads=1 "$@" > "logs/$out.log" 2>&1 || echo "   $out failed: $(tail -1 "logs/$out.log")"
}
for seed in $seeds; do
  for m in $methods; do
    w=${WARMUP:-0}; suffix=$([ "$m" != none ] && [ "$w" != 0 ] && echo "-w$w")
    # shellcheck disable=SC2046
    if [[ " $models " == *" mlp "* ]]; then
      train "$repo/examples/fashion-mnist-mlp.toml" "mlp-$(tag "$m")$suffix-s$seed" $(method_sets "$m") \
        --set run.seed=$seed --set train.batch_size=64 --set train.grad_accum=2
    fi
    if [[ " $models " == *" gpt "* ]]; then
      # shellcheck disable=SC2046
      train "$repo/examples/kjv-gpt.toml" "gpt-$(tag "$m")$suffix-s$seed" $(method_sets "$m") \
        --set run.seed=$seed --set train.batch_size=16 --set train.grad_accum=2 \
        --set train.steps=${GPT_STEPS:-1600} --set train.max_minutes=0
    fi
  done
done
python3 "$repo/bench/dist_compress/table.py" "$work/runs"
