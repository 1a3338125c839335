#!/usr/bin/env bash
# The transfer-learning, freezing, LoRA and distillation measurements of bench/RESULTS.md: runs every
# job in order in a scratch directory (default /tmp/frugal-transfer; its runs/ and run store), then
# `frugal compare` for each pair and bench/transfer/table.py for the table. About 45 minutes on 2
# cores. Usage: bench/transfer/run.sh [FRUGAL_BINARY] [WORK_DIR]
set -u
repo=$(cd "$(dirname "$0")/../.." && pwd)
frugal=${1:-$repo/build/frugal}
work=${2:-/tmp/frugal-transfer}
mkdir -p "$work" && cd "$work" || exit 1
ln -sfn "$repo/examples" examples
ln -sfn "$repo/bench" bench
lscpu | grep -E "Model name|^CPU\(s\)" > machine.txt
train() {  # train OUT JOB [--set ...]
  local out=$1 job=$2; shift 2
  if [ -f "runs/$out/summary.json" ]; then echo "== $out: done already"; return; fi
  echo "== $out ($job $*)"
  "$frugal" train "$job" --out "runs/$out" --quiet "$@" > "logs/$out.log" 2>&1
  echo "   exit $? $(grep -E 'test_accuracy|val_bits_per_char|val_accuracy' "logs/$out.log" | head -2 | tr '\n' ' ')"
}
mkdir -p logs
# Distillation: the teacher, the student alone, the student distilled (the cache built, then reused).
train teacher-cnn examples/fashion-mnist-cnn.toml
train student-cnn bench/transfer/student-cnn.toml
train student-distill bench/transfer/student-distill.toml
train student-distill-2 bench/transfer/student-distill.toml
# Distillation without the cache (the same logits computed live), other temperatures and weights,
# and twice the epochs for the student alone and distilled.
train student-distill-nocache bench/transfer/student-distill.toml --set distill.cache=false
train student-distill-t2 bench/transfer/student-distill.toml --set distill.temperature=2.0
train student-distill-a09 bench/transfer/student-distill.toml --set distill.alpha=0.9
train student-cnn-e12 bench/transfer/student-cnn.toml --set train.epochs=12
train student-distill-e12 bench/transfer/student-distill.toml --set train.epochs=12
# A second student: an MLP 4.1x smaller than the teacher, alone and distilled.
train student-mlp bench/transfer/student-mlp.toml
train student-mlp-distill bench/transfer/student-mlp-distill.toml
train student-mlp-distill-t2 bench/transfer/student-mlp-distill.toml --set distill.temperature=2.0
# Images: pretrain on classes 0-4; classes 5-9 with 100 labels each from scratch (two learning
# rates, the better one the baseline), fine-tuned, fine-tuned with the features frozen.
train fashion-pretrain-5 examples/transfer/fashion-pretrain-5.toml
train fashion-scratch-5 examples/transfer/fashion-scratch-5.toml
train fashion-scratch-5-lr2 examples/transfer/fashion-scratch-5.toml --set optim.lr=0.002
train fashion-finetune-5 examples/transfer/fashion-finetune-5.toml
train fashion-freeze-5 bench/transfer/fashion-freeze-5.toml
# The same with fewer labels: 20 per class.
train fashion-scratch-5-pc20 examples/transfer/fashion-scratch-5.toml --set data.per_class=20
train fashion-finetune-5-pc20 examples/transfer/fashion-finetune-5.toml --set data.per_class=20
train fashion-freeze-5-pc20 bench/transfer/fashion-freeze-5.toml --set data.per_class=20
# Text: the KJV GPT; the WEB from scratch (the fine-tune's recipe, and the KJV's own tuned recipe),
# fine-tuned in full and with LoRA.
train kjv-pretrain examples/transfer/kjv-pretrain.toml
train web-scratch examples/transfer/web-scratch.toml
train web-scratch-recipe examples/transfer/kjv-pretrain.toml --set data.source=bible-web --set run.name=web-scratch-recipe
train web-finetune examples/transfer/web-finetune.toml
train web-finetune-cosine bench/transfer/web-finetune-cosine.toml
train web-lora bench/transfer/web-lora.toml
# Freezing half the GPT: step time against the backward FLOPs skipped, alternated runs.
for round in 1 2 3 4; do
  train web-timing-full-$round bench/transfer/web-timing-full.toml
  train web-timing-freeze-$round bench/transfer/web-timing-freeze.toml
done
cmp() { echo "== compare $1 $2"; "$frugal" compare "runs/$1" "runs/$2"; echo; }
{
  cmp student-cnn student-distill
  cmp student-cnn-e12 student-distill-e12
  cmp student-distill student-distill-2
  cmp teacher-cnn student-distill
  cmp fashion-scratch-5 fashion-finetune-5
  cmp fashion-scratch-5-lr2 fashion-finetune-5
  cmp fashion-scratch-5 fashion-freeze-5
  cmp fashion-scratch-5-pc20 fashion-finetune-5-pc20
  cmp fashion-scratch-5-pc20 fashion-freeze-5-pc20
  cmp web-scratch web-finetune
  cmp web-scratch-recipe web-finetune-cosine
  cmp web-finetune web-lora
  cmp web-timing-full-1 web-timing-freeze-1
  cmp student-mlp student-mlp-distill
} > compare.txt 2>&1
python3 "$repo/bench/transfer/table.py" runs > table.md
cat table.md
