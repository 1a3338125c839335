#!/usr/bin/env bash
# Data-efficiency measurements of issue 21 part 1, shortened to fit ~10 minutes on 2 cores per round
# (say so beside the figures). In a scratch directory (default /tmp/frugal-data-sched):
# (a) the KJV GPT (examples/kjv-gpt.toml, bf16-mixed, evaluated every GPT_EVAL steps) plain and with
#     [seq_warmup] fraction = WARMUP (chosen by bench/data_sched/run.sh tune; see below);
# (b) the Fashion-MNIST MLP (examples/fashion-mnist-mlp.toml, MLP_EPOCHS epochs, evaluated twice an
#     epoch) plain, with a self-scored curriculum (easy first, anti and a random pool as controls),
#     selective backprop (keep 0.5) and importance sampling.
# Each round uses a fresh seed (SEED0 + round) and alternates the order of the variants; `frugal
# compare PLAIN METHOD` gives the verdict (time and cost, pro rata, to reach plain's final validation
# metric). bench/data_sched/table.py prints the markdown table (medians over rounds).
# Tuning (`run.sh tune`): the GPT plain and with fractions TUNE_FRACTIONS on seed TUNE_SEED (1), the
# table of each; choose there, then report the chosen one with `run.sh` on the fresh seeds.
# Usage: bench/data_sched/run.sh [tune] [FRUGAL_BINARY] [WORK_DIR] [ROUNDS]
# Environment: GPT_STEPS (1600: the example's), GPT_EVAL (100), GPT_EVAL_TOKENS (100000: the example's), WARMUP (0.25), MLP_EPOCHS (4; the
# example: 12), SEED0 (100), PARTS ("gpt mlp").
set -u
repo=$(cd "$(dirname "$0")/../.." && pwd)
mode=run
if [ "${1:-}" = tune ]; then mode=tune; shift; fi
frugal=${1:-$repo/build/frugal}
work=${2:-/tmp/frugal-data-sched}
rounds=${3:-1}
gpt_steps=${GPT_STEPS:-1600}; gpt_eval=${GPT_EVAL:-100}; gpt_eval_tokens=${GPT_EVAL_TOKENS:-100000}; warmup=${WARMUP:-0.25}; mlp_epochs=${MLP_EPOCHS:-4}
seed0=${SEED0:-100}; parts=${PARTS:-gpt mlp}
mkdir -p "$work/logs" && cd "$work" || exit 1
lscpu | grep -E "Model name|^CPU\(s\)" > machine.txt
train() {  # train OUT JOB [--set ...]
  local out=$1 job=$2; shift 2
  if [ -f "runs/$out/summary.json" ]; then echo "== $out: done already"; return; fi
  echo "== $out $(date -u +%H:%M:%S)"
  "$frugal" train "$job" --out "runs/$out" --quiet "$@" > "logs/$out.log" 2>&1
  echo "   exit $?"
}
compare() {  # compare A B: the JSON verdict into compare/B.json
  mkdir -p compare
  "$frugal" compare "runs/$1" "runs/$2" --json > "compare/$2.json" 2> "logs/compare-$2.log" || echo "   compare $2 failed"
}
gpt=$repo/examples/kjv-gpt.toml
mlp=$repo/examples/fashion-mnist-mlp.toml
gpt_set=(--set precision.mode=\"bf16-mixed\" --set train.steps=$gpt_steps --set train.eval_every=$gpt_eval
         --set train.eval_tokens=$gpt_eval_tokens --set train.max_minutes=0)
mlp_set=(--set train.epochs=$mlp_epochs --set train.eval_every=211)

if [ "$mode" = tune ]; then
  seed=${TUNE_SEED:-1}
  train tune-gpt-plain $gpt "${gpt_set[@]}" --set run.seed=$seed
  for f in ${TUNE_FRACTIONS:-0.1 0.3}; do
    train tune-gpt-warm$f $gpt "${gpt_set[@]}" --set run.seed=$seed --set seq_warmup.fraction=$f
    compare tune-gpt-plain tune-gpt-warm$f
  done
  python3 "$repo/bench/data_sched/table.py" . tune
  exit 0
fi

for round in $(seq 1 "$rounds"); do
  seed=$((seed0 + round))
  if [[ " $parts " == *" gpt "* ]]; then
    # Alternate which variant runs first (the machine's load drifts).
    if [ $((round % 2)) = 1 ]; then order="plain warm"; else order="warm plain"; fi
    for v in $order; do
      if [ $v = plain ]; then train gpt-plain-$round $gpt "${gpt_set[@]}" --set run.seed=$seed
      else train gpt-warm-$round $gpt "${gpt_set[@]}" --set run.seed=$seed --set seq_warmup.fraction=$warmup; fi
    done
    compare gpt-plain-$round gpt-warm-$round
  fi
  if [[ " $parts " == *" mlp "* ]]; then
    variants=(plain curriculum anti random selective importance)
    if [ $((round % 2)) = 0 ]; then variants=(importance selective random anti curriculum plain); fi
    for v in "${variants[@]}"; do
      case $v in
        plain) train mlp-plain-$round $mlp "${mlp_set[@]}" --set run.seed=$seed ;;
        curriculum) train mlp-curriculum-$round $mlp "${mlp_set[@]}" --set run.seed=$seed --set curriculum.score=\"self\" ;;
        anti) train mlp-anti-$round $mlp "${mlp_set[@]}" --set run.seed=$seed --set curriculum.score=\"self\" \
                --set curriculum.order=\"anti\" ;;
        random) train mlp-random-$round $mlp "${mlp_set[@]}" --set run.seed=$seed --set curriculum.score=\"self\" \
                  --set curriculum.order=\"random\" ;;
        selective) train mlp-selective-$round $mlp "${mlp_set[@]}" --set run.seed=$seed --set selective_backprop.keep=0.5 ;;
        importance) train mlp-importance-$round $mlp "${mlp_set[@]}" --set run.seed=$seed \
                      --set importance_sampling.smoothing=0.5 ;;
      esac
    done
    for v in curriculum anti random selective importance; do compare mlp-plain-$round mlp-$v-$round; done
  fi
done
python3 "$repo/bench/data_sched/table.py" . "$rounds"
