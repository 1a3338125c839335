#!/usr/bin/env bash
# int8 post-training quantization measurements of bench/RESULTS.md: trains the example MLP, CNN and
# GPT briefly (or reuses runs: MLP_RUN, CNN_RUN, GPT_RUN = run directories holding model.safetensors),
# quantizes each (minmax and percentile calibration; the GPT with dynamic and static activations),
# then evaluates the MLP and CNN in fp32 / bf16-mixed / int8 alternated over ROUNDS rounds at 1 and
# 2 threads (median throughput over rounds, each the median of EVAL_REPEAT (10) evaluations after eval's warm-up batch), and the GPT's val bits/char (one pass
# each: the whole KJV val split is slow) with one greedy sample of each. Prints a markdown table.
# About 8 minutes on 2 quiet cores with the short trainings (SKIP_GPT=1 leaves the GPT out).
# Usage: bench/quant/run.sh [FRUGAL_BINARY] [WORK_DIR]
set -u
repo=$(cd "$(dirname "$0")/../.." && pwd)
frugal=${1:-$repo/build/frugal}
work=${2:-/tmp/frugal-quant}
rounds=${ROUNDS:-3}
mkdir -p "$work/logs" && cd "$work" || exit 1
ln -sfn "$repo/examples" examples
cpu=$(lscpu | sed -n 's/^Model name: *//p')
train() {  # train OUT JOB [--set ...]; skipped when the run exists
  local out=$1 job=$2; shift 2
  if [ -f "runs/$out/model.safetensors" ]; then return; fi
  echo "== train $out" >&2
  "$frugal" train "$job" --out "runs/$out" --quiet "$@" > "logs/$out.log" 2>&1 || { echo "train $out failed" >&2; exit 1; }
}
mlp=${MLP_RUN:-runs/mlp}; cnn=${CNN_RUN:-runs/cnn}; gpt=${GPT_RUN:-runs/gpt}
[ -n "${MLP_RUN:-}" ] || train mlp examples/fashion-mnist-mlp.toml --set train.epochs=3
[ -n "${CNN_RUN:-}" ] || train cnn examples/fashion-mnist-cnn.toml --set train.epochs=1
[ -n "${GPT_RUN:-}" ] || [ -n "${SKIP_GPT:-}" ] || train gpt examples/kjv-gpt.toml --set train.steps=300 --set train.eval_every=300
quantize() {  # quantize JOB RUN OUT ARGS...
  local job=$1 run=$2 out=$3; shift 3
  "$frugal" quantize "$job" --weights "$run/model.safetensors" --out "$out" "$@" > "logs/$(basename "$out").log" 2>&1 \
    || { echo "quantize $out failed: $(tail -1 "logs/$(basename "$out").log")" >&2; exit 1; }
}
quantize examples/fashion-mnist-mlp.toml "$mlp" mlp-minmax.safetensors --calibration minmax
quantize examples/fashion-mnist-mlp.toml "$mlp" mlp-pct.safetensors --calibration percentile:99.99
quantize examples/fashion-mnist-cnn.toml "$cnn" cnn-minmax.safetensors --calibration minmax
quantize examples/fashion-mnist-cnn.toml "$cnn" cnn-pct.safetensors --calibration percentile:99.99
if [ -z "${SKIP_GPT:-}" ]; then
  quantize examples/kjv-gpt.toml "$gpt" gpt-dynamic.safetensors --activations dynamic
  quantize examples/kjv-gpt.toml "$gpt" gpt-static.safetensors --activations static --calibration percentile:99.99 --samples 64
fi
ev() {  # ev LABEL JOB WEIGHTS SPLIT [--set ...]: one JSON line into results.jsonl
  local label=$1 job=$2 weights=$3 split=$4; shift 4
  local line
  line=$("$frugal" eval "$job" --weights "$weights" --split "$split" --json "$@" 2>/dev/null | tail -1)
  echo "{\"label\": \"$label\", \"result\": ${line:-null}}" >> results.jsonl
}
rm -f results.jsonl samples.txt
for round in $(seq "$rounds"); do
  echo "== round $round" >&2
  for threads in 1 2; do
    for model in mlp cnn; do
      job=examples/fashion-mnist-$model.toml; run=$mlp; [ $model = cnn ] && run=$cnn
      t="--set run.threads=$threads --repeat ${EVAL_REPEAT:-10}"  # the median of repeated evaluations
      ev "$model fp32 t$threads" $job "$run/model.safetensors" test --set precision.mode=fp32 $t
      ev "$model bf16-mixed t$threads" $job "$run/model.safetensors" test --set precision.mode=bf16-mixed $t
      ev "$model int8-minmax t$threads" $job $model-minmax.safetensors test $t
      ev "$model int8-percentile t$threads" $job $model-pct.safetensors test $t
    done
  done
done
if [ -z "${SKIP_GPT:-}" ]; then
  echo "== gpt" >&2
  ev "gpt fp32 t2" examples/kjv-gpt.toml "$gpt/model.safetensors" val --set precision.mode=fp32
  ev "gpt bf16-mixed t2" examples/kjv-gpt.toml "$gpt/model.safetensors" val --set precision.mode=bf16-mixed
  ev "gpt int8-dynamic t2" examples/kjv-gpt.toml gpt-dynamic.safetensors val
  ev "gpt int8-static t2" examples/kjv-gpt.toml gpt-static.safetensors val
  for w in "$gpt/model.safetensors" gpt-dynamic.safetensors gpt-static.safetensors; do
    echo "--- $w" >> samples.txt
    "$frugal" sample examples/kjv-gpt.toml --weights "$w" --prompt "In the beginning" --tokens 160 --temperature 0 --quiet >> samples.txt 2>&1
  done
fi
python3 - "$cpu" "$rounds" <<'PY'
import json, statistics, sys
cpu, rounds = sys.argv[1], sys.argv[2]
rows = {}
for line in open("results.jsonl"):
    r = json.loads(line)
    if r["result"] is None: continue
    rows.setdefault(r["label"], []).append(r["result"])
print(f"CPU: {cpu}. MLP/CNN: {rounds} rounds alternated, medians; GPT: one pass each over the val split.\n")
print("| model | variant | threads | test accuracy / val bits/char | eval throughput (median) | vs fp32 |")
print("|---|---|---|---|---|---|")
base = {}
for label, results in rows.items():
    model, variant, threads = label.split(" ")
    tput = statistics.median(x["samples_per_second"] for x in results)
    if variant == "fp32": base[(model, threads)] = tput
    q = results[0].get("accuracy")
    quality = f"{100*q:.2f}%" if q is not None else f"{results[0]['bits_per_char']:.4f} bits/char"
    unit = "tokens/s" if model == "gpt" else "samples/s"
    ratio = f"{tput / base[(model, threads)]:.2f}x" if (model, threads) in base else "-"
    print(f"| {model} | {variant} | {threads[1:]} | {quality} | {tput:,.0f} {unit} | {ratio} |")
PY
if [ -f samples.txt ]; then
  echo; echo "Greedy samples (160 characters after 'In the beginning'):"; echo '```'; cat samples.txt; echo '```'
fi
