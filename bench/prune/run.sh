#!/usr/bin/env bash
# The pruning measurements of bench/RESULTS.md, shortened to fit ~10 minutes on 2 cores (the runs are
# shorter than the examples: say so beside the figures). In a scratch directory (default
# /tmp/frugal-prune): (a) the Fashion-MNIST MLP dense and with [prune] 90% of its weights (gradual);
# (b) the CNN dense, `frugal prune` to half its conv channels, fine-tuned, and short timing runs of
# both alternated; (c) the KJV GPT dense, `frugal prune` to half its heads and MLP width, fine-tuned,
# and timing runs alternated. Then `frugal compare` for each pair and bench/prune/table.py for the
# table, and eval throughput (`frugal eval --repeat`, alternated) of the dense and pruned models, the
# MLP's with the sparse kernel (--sparse auto) and without (off). Longer runs through the
# environment: MLP_EPOCHS (4; the example: 12), CNN_EPOCHS (2) and CNN_FT_EPOCHS (1), GPT_DENSE (a
# trained dense GPT's model.safetensors to prune instead of 300 steps here) and GPT_FT_STEPS (150).
# Usage: bench/prune/run.sh [FRUGAL_BINARY] [WORK_DIR] [ROUNDS]
set -u
repo=$(cd "$(dirname "$0")/../.." && pwd)
frugal=${1:-$repo/build/frugal}
work=${2:-/tmp/frugal-prune}
rounds=${3:-3}
mkdir -p "$work/logs" && cd "$work" || exit 1
ln -sfn "$repo/examples" examples
lscpu | grep -E "Model name|^CPU\(s\)" > machine.txt
train() {  # train OUT JOB [--set ...]
  local out=$1 job=$2; shift 2
  if [ -f "runs/$out/summary.json" ]; then echo "== $out: done already"; return; fi
  echo "== $out ($job $*)"
  "$frugal" train "$job" --out "runs/$out" --quiet "$@" > "logs/$out.log" 2>&1
  echo "   exit $?"
}
prune() {  # prune OUT JOB WEIGHTS [flags]
  local out=$1 job=$2 weights=$3; shift 3
  echo "== prune $out ($*)"
  "$frugal" prune "$job" --weights "$weights" --out "pruned/$out" "$@" > "logs/prune-$out.log" 2>&1
  echo "   exit $? $(grep '^parameters' "logs/prune-$out.log")"
}
mlp=examples/fashion-mnist-mlp.toml
cnn=examples/fashion-mnist-cnn.toml
gpt=examples/kjv-gpt.toml

# (a) MLP, 4 epochs (the example runs 12): dense, and 90% of the weights pruned gradually from 10%
# to 60% of the run (the rest fine-tunes).
mlp_epochs=${MLP_EPOCHS:-4}; cnn_epochs=${CNN_EPOCHS:-2}; cnn_ft=${CNN_FT_EPOCHS:-1}; gpt_ft=${GPT_FT_STEPS:-150}
train mlp-dense $mlp --set train.epochs=$mlp_epochs
train mlp-prune90 $mlp --set train.epochs=$mlp_epochs --set prune.sparsity=0.9 --set prune.scope=\"layer\"

# (b) CNN: 2 epochs dense; half of each conv layer's channels removed by `frugal prune`; 1 epoch of
# fine-tuning from the pruned weights; the dense model fine-tuned 1 epoch more as its fair twin.
train cnn-dense $cnn --set train.epochs=$cnn_epochs
prune cnn-half $cnn runs/cnn-dense/model.safetensors --sparsity 0.5 --structure channels --scope layer
train cnn-half-ft pruned/cnn-half/model.toml --set init.from=\"$work/pruned/cnn-half/model.safetensors\" \
  --set train.epochs=$cnn_ft --set schedule.warmup_steps=0
train cnn-dense-ft $cnn --set init.from=\"$work/runs/cnn-dense/model.safetensors\" --set train.epochs=$cnn_ft \
  --set schedule.warmup_steps=0

# (c) GPT: 300 steps dense; half the heads and half the MLP width of every block; 150 steps of
# fine-tuning; the dense model 150 steps more alike.
gpt_dense=${GPT_DENSE:-runs/gpt-dense/model.safetensors}
[ -n "${GPT_DENSE:-}" ] || train gpt-dense $gpt --set train.steps=300 --set train.eval_every=300 --set train.eval_tokens=50000
gpt_dense=$(realpath "$gpt_dense")
prune gpt-half $gpt "$gpt_dense" --sparsity 0.5 --structure heads --structure mlp --scope layer
train gpt-half-ft pruned/gpt-half/model.toml --set init.from=\"$work/pruned/gpt-half/model.safetensors\" \
  --set train.steps=$gpt_ft --set train.eval_every=$gpt_ft --set train.eval_tokens=50000 --set schedule.warmup_steps=0
train gpt-dense-ft $gpt --set init.from=\"$gpt_dense\" --set train.steps=$gpt_ft \
  --set train.eval_every=$gpt_ft --set train.eval_tokens=50000 --set schedule.warmup_steps=0

# Timing: short runs of each pair alternated, `rounds` times; step time and evaluation time from
# their summaries' phases (the same samples evaluated by both). Long enough that the first steps'
# one-off set-up (primitives, buffers) weighs little.
short="--set schedule.warmup_steps=5"
for round in $(seq 1 "$rounds"); do
  train cnn-time-dense-$round $cnn --set train.steps=150 --set data.train_limit=19200 --set train.eval_every=150 $short
  train cnn-time-half-$round pruned/cnn-half/model.toml --set train.steps=150 --set data.train_limit=19200 \
    --set train.eval_every=150 $short
  train gpt-time-dense-$round $gpt --set train.steps=30 --set train.eval_every=30 --set train.eval_tokens=20000 $short
  train gpt-time-half-$round pruned/gpt-half/model.toml --set train.steps=30 --set train.eval_every=30 \
    --set train.eval_tokens=20000 $short
  # The MLP dense against dense-with-zeros (the same dense kernels: no speedup is expected until the
  # sparse kernel), the pruned one keeping its masks ([prune] oneshot at step 0: the mask cost).
  train mlp-time-dense-$round $mlp --set train.steps=400 $short \
    --set init.from=\"$work/runs/mlp-dense/model.safetensors\"
  train mlp-time-prune90-$round $mlp --set train.steps=400 $short \
    --set init.from=\"$work/runs/mlp-prune90/model.safetensors\" --set prune.sparsity=0.9 \
    --set prune.scope=\"layer\" --set prune.schedule=\"oneshot\" --set prune.start_step=0
done

cmp() { echo "== compare $1 $2"; "$frugal" compare "runs/$1" "runs/$2"; echo; }
{
  cmp mlp-dense mlp-prune90
  cmp cnn-dense-ft cnn-half-ft
  cmp gpt-dense-ft gpt-half-ft
  cmp cnn-time-dense-1 cnn-time-half-1
  cmp gpt-time-dense-1 gpt-time-half-1
  cmp mlp-time-dense-1 mlp-time-prune90-1
} > compare.txt 2>&1
python3 "$repo/bench/prune/table.py" . "$rounds" > table.md
cat table.md

# Eval throughput (test split, median of 20 evaluations each; alternated rounds).
ev() {  # ev LABEL JOB WEIGHTS [flags]
  local label=$1 job=$2 weights=$3; shift 3
  printf '%s\t%s\n' "$label" "$("$frugal" eval "$job" --weights "$weights" --repeat 20 "$@" | tail -1)"
}
{
  for round in $(seq 1 "$rounds"); do
    ev mlp-dense $mlp runs/mlp-dense/model.safetensors --sparse off
    ev mlp-prune90-dense-kernels $mlp runs/mlp-prune90/model.safetensors --sparse off
    ev mlp-prune90-sparse-auto $mlp runs/mlp-prune90/model.safetensors --sparse auto
    ev cnn-dense $cnn runs/cnn-dense-ft/model.safetensors
    ev cnn-half pruned/cnn-half/model.toml runs/cnn-half-ft/model.safetensors
  done
  "$frugal" eval $mlp --weights runs/mlp-prune90/model.safetensors --sparse auto | grep '^sparse:'
} > evals.txt 2>&1
cat evals.txt
