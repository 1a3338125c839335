#!/usr/bin/env bash
# int8-mixed against bf16-mixed and fp32 (bench/RESULTS.md): step time from alternated short runs
# (rounds of fp32, bf16-mixed, int8-mixed, medians of train_compute_s / steps) on the Fashion-MNIST
# MLP and the KJV GPT, and final quality from one run per mode (the MLP example in full; the GPT for
# GPT_STEPS steps, default 200, or in full with GPT_STEPS=full, ~15 min a mode). ~8 min by default
# on 2 cores; MLP_STEP_STEPS (300) lengthens the MLP's timing runs. Usage: [TORCHAO_PYTHON=venv/bin/python] bench/int8/run.sh [FRUGAL_BINARY] [WORK_DIR] [ROUNDS]
set -u
repo=$(cd "$(dirname "$0")/../.." && pwd)
frugal=$(realpath "${1:-$repo/build/frugal}")
work=${2:-/tmp/frugal-int8}
rounds=${3:-3}
gpt_steps=${GPT_STEPS:-200}
mkdir -p "$work/runs" "$work/logs" && cd "$work" || exit 1
modes="fp32 bf16-mixed int8-mixed"
train() {  # train OUT JOB [--set ...]: skipped when done already (a rerun resumes the table)
  local out=$1 job=$2; shift 2
  [ -f "runs/$out/summary.json" ] && return
  "$frugal" train "$job" --out "runs/$out" --quiet --set run.store='"runs.db"' "$@" > "logs/$out.log" 2>&1 ||
    echo "   $out failed: $(tail -1 "logs/$out.log")"
}
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores; $rounds alternated rounds"
for round in $(seq 1 "$rounds"); do
  for mode in $modes; do
    train "mlp-step-$mode-$round" "$repo/examples/fashion-mnist-mlp.toml" --set train.steps="${MLP_STEP_STEPS:-300}" --set train.eval_every="${MLP_STEP_STEPS:-300}" \
      --set precision.mode="\"$mode\""
    train "gpt-step-$mode-$round" "$repo/examples/kjv-gpt.toml" --set train.steps=30 --set train.eval_every=30 --set schedule.warmup_steps=10 \
      --set train.eval_tokens=20000 --set precision.mode="\"$mode\""
  done
done
for mode in $modes; do
  train "mlp-full-$mode" "$repo/examples/fashion-mnist-mlp.toml" --set precision.mode="\"$mode\""
  if [ "$gpt_steps" = full ]; then
    train "gpt-full-$mode" "$repo/examples/kjv-gpt.toml" --set precision.mode="\"$mode\""
  else
    train "gpt-full-$mode" "$repo/examples/kjv-gpt.toml" --set train.steps="$gpt_steps" \
      --set train.eval_every="$gpt_steps" --set precision.mode="\"$mode\""
  fi
done
python3 "$repo/bench/int8/table.py" "$work/runs" "$rounds"
# PyTorch's int8 training option (torchao), when a Python with torch and torchao is given.
if [ -n "${TORCHAO_PYTHON:-}" ]; then "$TORCHAO_PYTHON" "$repo/bench/int8/torchao_mlp.py" "$rounds" 2>/dev/null; fi
