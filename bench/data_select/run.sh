#!/usr/bin/env bash
# Data pruning and active learning on Fashion-MNIST (issue 21). Part 1, the pruning sweep, for each
# of PRUNE_SEEDS (default "1 2"): the README MLP example in full, one scoring run (`frugal data
# score`, SCORE_EPOCHS=2), then for each kept FRACTIONS (default "0.4 0.5 0.7") a run keeping the
# hardest by EL2N, the hardest by forgetting events and a random control; the table gives test
# accuracy (mean over seeds), steps, training FLOPs with the scoring run, times, and the smallest
# fraction within 0.3 points of the full run. Quality
# does not depend on the machine's load, times do. Part 2, active learning: `frugal active` for each
# of STRATEGIES on the MLP (AL_EPOCHS epochs per round, fresh model), AL_SEEDS seeds, labels to reach
# AL_TARGET test accuracy. On 2 quiet cores with the defaults: ~15 min the pruning part, ~35 min active
# learning (5 strategies x 3 seeds x 8 rounds); PARTS="prune" or "active" runs one.
# Usage: bench/data_select/run.sh [FRUGAL_BINARY] [WORK_DIR]
set -u
repo=$(cd "$(dirname "$0")/../.." && pwd)
frugal=$(realpath "${1:-$repo/build/frugal}")
work=${2:-/tmp/frugal-data-select}
fractions=${FRACTIONS:-"0.4 0.5 0.7"}
parts=${PARTS:-"prune active"}
strategies=${STRATEGIES:-"random entropy margin least_confidence coreset"}
job=$repo/examples/fashion-mnist-mlp.toml
mkdir -p "$work/runs" "$work/logs" && cd "$work" || exit 1
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores (times depend on the machine's load)"
train() {  # train OUT [--set ...]: skipped when done already (a rerun resumes the table)
  local out=$1; shift
  [ -f "runs/$out/summary.json" ] && return
  "$frugal" train "$job" --out "runs/$out" --quiet "$@" > "logs/$out.log" 2>&1 ||
    echo "   $out failed: $(tail -1 "logs/$out.log")"
}
if [[ " $parts " == *" prune "* ]]; then
  for seed in ${PRUNE_SEEDS:-1 2}; do  # run.seed: the model's init, the shuffle and the val split (so its own scores)
    sets=(--set run.seed=$seed --set run.store='"runs.db"')
    [ -f "scores-s$seed.safetensors" ] || "$frugal" data score "$job" --out "scores-s$seed.safetensors" --epochs "${SCORE_EPOCHS:-2}" \
      --run-out "runs/scoring-s$seed" --quiet "${sets[@]}" > "logs/scoring-s$seed.log" 2>&1 ||
      echo "scoring failed: $(tail -1 "logs/scoring-s$seed.log")"
    train "full-s$seed" "${sets[@]}"
    for f in $fractions; do  # alternated: el2n, forgetting, random at each fraction
      for how in el2n:hardest forgetting:hardest el2n:random; do
        score=${how%%:*} keep=${how##*:}
        train "prune-$score-$keep-$f-s$seed" "${sets[@]}" --set data_pruning.scores="\"$work/scores-s$seed.safetensors\"" \
          --set data_pruning.score="\"$score\"" --set data_pruning.keep="\"$keep\"" --set data_pruning.fraction="$f"
      done
    done
  done
  python3 "$repo/bench/data_select/table.py" prune "$work/runs" "${PRUNE_SEEDS:-1 2}" $fractions
fi
if [[ " $parts " == *" active "* ]]; then
  for s in $strategies; do
    [ -f "al-$s.json" ] && continue
    "$frugal" active "$job" --budget "${AL_BUDGET:-6000}" --initial "${AL_INITIAL:-1000}" --batch "${AL_BATCH:-1000}" \
      --strategy "$s" --seeds "${AL_SEEDS:-3}" --target-accuracy "${AL_TARGET:-0.85}" --out "runs/al-$s" --json "al-$s.json" \
      --set run.store='"runs.db"' --set train.epochs="${AL_EPOCHS:-10}" --set schedule.warmup_steps=20 > "logs/al-$s.log" 2>&1 ||
      echo "   active $s failed: $(tail -1 "logs/al-$s.log")"
  done
  python3 "$repo/bench/data_select/table.py" active "$work" $strategies
fi
