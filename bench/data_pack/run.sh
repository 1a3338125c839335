#!/usr/bin/env bash
# Packed data (`frugal data pack`, [data] kind = "packed") measured in a scratch directory (default
# /tmp/frugal-data-pack), bounded to roughly 10-15 minutes on 2 cores by short runs (say so beside
# the figures):
#  (a) memory: Fashion-MNIST's training split packed REPEAT (20) times (~1.08 M u8 images, ~850 MB
#      raw, 3.4 GB as f32), one epoch of the MLP example streamed from it inside a memory cgroup
#      limited to LIMIT_MB (256) MiB when one can be made (cgroup v1 memory.limit_in_bytes under this
#      shell's own memory cgroup, else v2 memory.max; else unlimited, said in the table): peak RSS
#      from the summary and the cgroup's own peak (which includes reclaimable page cache);
#  (b) data wait with augmentation: the CNN example with crop_padding = 2 and flip, CNN_STEPS (300)
#      steps, packed (2 loader threads) vs in memory (1), alternated over ROUNDS rounds: data_wait_s
#      as a share of wall_s and of train_compute_s (medians);
#  (c) throughput: one epoch of the MLP example, packed vs in memory, alternated (samples/s, medians);
#  (e) accuracy: the CNN example (crop + flip) for ACC_EPOCHS (1) epochs, packed vs in memory: test
#      accuracy. Not bit-identical: the packed order is shards + blocks + a windowed shuffle, the
#      in-memory one a full Fisher-Yates.
# Usage: bench/data_pack/run.sh [FRUGAL_BINARY] [WORK_DIR] [ROUNDS]; PARTS=a (or bce, ...) runs only
# those parts (the table keeps the figures of the others from an earlier run in WORK_DIR).
set -u
repo=$(cd "$(dirname "$0")/../.." && pwd)
frugal=${1:-$repo/build/frugal}
work=${2:-/tmp/frugal-data-pack}
rounds=${3:-2}
repeat=${REPEAT:-20}; limit_mb=${LIMIT_MB:-256}; parts=${PARTS:-abce}; cnn_steps=${CNN_STEPS:-300}; acc_epochs=${ACC_EPOCHS:-1}
mkdir -p "$work/logs" "$work/runs" && cd "$work" || exit 1
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)

# Job files: the examples as they are (in memory), and their packed twins ([data] replaced).
python3 - "$repo" <<'EOF'
import re, sys
repo = sys.argv[1]
def packed(text, path, extra):
    return re.sub(r"\[data\]\n(.*?\n)\n", "[data]\nkind = \"packed\"\npath = \"%s\"\nnormalize = \"scalar\"\n%s\n" % (path, extra),
                  text, count=1, flags=re.S)
mlp = open(repo + "/examples/fashion-mnist-mlp.toml").read()
cnn = open(repo + "/examples/fashion-mnist-cnn.toml").read()
aug = "crop_padding = 2\nflip = true\n"
cnn_aug = cnn.replace('normalize = "scalar"\n', 'normalize = "scalar"\n' + aug, 1)
open("mlp-memory.toml", "w").write(mlp)
open("cnn-memory.toml", "w").write(cnn_aug)
open("mlp-packed.toml", "w").write(packed(mlp, "fm", "workers = 2\n"))
open("mlp-big.toml", "w").write(packed(mlp, "big", "workers = 2\n"))
open("cnn-packed.toml", "w").write(packed(cnn, "fm", aug + "workers = 2\n"))
EOF
[ -f fm/index.fpk ] || "$frugal" data pack mlp-memory.toml --out fm > logs/pack-fm.log 2>&1 || { cat logs/pack-fm.log; exit 1; }
[ -f big/index.fpk ] || "$frugal" data pack mlp-memory.toml --out big --repeat "$repeat" > logs/pack-big.log 2>&1 || { cat logs/pack-big.log; exit 1; }
echo "pack fm:  $(tail -2 logs/pack-fm.log | head -1)"
echo "pack big: $(tail -2 logs/pack-big.log | head -1)"

train() {  # train OUT JOB [--set ...]: runs/OUT/summary.json
  local out=$1 job=$2; shift 2
  rm -rf "runs/$out"
  "$frugal" train "$job" --out "runs/$out" --quiet --json "$@" > "logs/$out.log" 2>&1
  local rc=$?
  [ $rc -eq 0 ] || { echo "   $out exit $rc: $(tail -1 logs/$out.log)"; }
  return $rc
}

# (a) one epoch of the 20x pack inside a memory cgroup.
cg=""; big_rc=""; cg_peak=""; cg_fail=""
if [[ $parts == *a* ]]; then
own=$(sed -n 's/^[0-9]*:memory:\(.*\)$/\1/p' /proc/self/cgroup)
if [ -n "$own" ] && [ -w "/sys/fs/cgroup/memory$own" ] && mkdir -p "/sys/fs/cgroup/memory$own/frugal-pack-bench" 2>/dev/null; then
  cg="/sys/fs/cgroup/memory$own/frugal-pack-bench"
  echo $((limit_mb * 1048576)) > "$cg/memory.limit_in_bytes"
  echo 0 > "$cg/memory.max_usage_in_bytes" 2>/dev/null
  how="cgroup v1 memory.limit_in_bytes = $limit_mb MiB"
elif [ -w /sys/fs/cgroup/cgroup.subtree_control ] && mkdir -p /sys/fs/cgroup/frugal-pack-bench 2>/dev/null; then
  cg=/sys/fs/cgroup/frugal-pack-bench
  echo $((limit_mb * 1048576)) > "$cg/memory.max"
  how="cgroup v2 memory.max = $limit_mb MiB"
else
  how="no memory cgroup could be made here: unlimited"
fi
rm -rf runs/big
if [ -n "$cg" ]; then
  sh -c "echo \$\$ > '$cg/cgroup.procs' && exec '$frugal' train mlp-big.toml --out runs/big --quiet --json --set train.epochs=1" > logs/big.log 2>&1
else
  "$frugal" train mlp-big.toml --out runs/big --quiet --json --set train.epochs=1 > logs/big.log 2>&1
fi
big_rc=$?
cg_peak=""
if [ -n "$cg" ]; then
  cg_peak=$(cat "$cg/memory.max_usage_in_bytes" 2>/dev/null || cat "$cg/memory.peak" 2>/dev/null)
  cg_fail=$(cat "$cg/memory.failcnt" 2>/dev/null || echo "?")
  rmdir "$cg"
fi
echo "$how|$big_rc|$cg_peak|$cg_fail" > runs/big.limit
fi
[ -f runs/big.limit ] && IFS='|' read -r how big_rc cg_peak cg_fail < runs/big.limit
# (b), (c) alternated rounds; (e) once each.
for r in $(seq 1 "$rounds"); do
  for v in memory packed; do
    [[ $parts == *b* ]] && train "cnn-$v-$r" "cnn-$v.toml" --set train.steps=$cnn_steps --set train.eval_every=100000 --set train.log_every=100000
    [[ $parts == *c* ]] && train "mlp-$v-$r" "mlp-$v.toml" --set train.epochs=1
  done
done
if [[ $parts == *e* ]]; then
  for v in memory packed; do train "acc-$v" "cnn-$v.toml" --set train.epochs=$acc_epochs; done
fi

python3 - "$cpu" "$rounds" "$how" "$limit_mb" "$big_rc" "${cg_peak:-}" "${cg_fail:-}" "$cnn_steps" "$acc_epochs" "$repeat" <<'EOF'
import json, os, statistics, sys
cpu, rounds, how, limit_mb, big_rc, cg_peak, cg_fail, cnn_steps, acc_epochs, repeat = sys.argv[1:]
rounds = int(rounds)
def load(name):
    try:
        with open("runs/%s/summary.json" % name) as f: return json.load(f)
    except OSError: return None
def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")
mib = lambda b: b / 1048576
print("\nCPU: %s; the machine was shared with other builds while this ran (timings are indicative).\n" % cpu)
big = load("big")
raw = sum(os.path.getsize(os.path.join("big", f)) for f in os.listdir("big"))
print("### (a) Peak memory streaming a pack larger than the limit\n")
print("| pack | samples | on disk | raw u8 / as f32 | limit | exit | peak RSS (summary) | cgroup peak (incl. page cache) | epoch wall |")
print("|---|---|---|---|---|---|---|---|---|")
if big:
    n = big["samples_seen"]
    print("| Fashion-MNIST train x%s | %d | %.0f MiB | %.0f MiB / %.0f MiB | %s | %s | %.0f MiB | %s | %.0f s |" % (
        repeat, n, mib(raw), mib(n * 788), mib(n * 3140), how, big_rc, mib(big["peak_rss_bytes"]),
        ("%.0f MiB (failcnt %s)" % (mib(int(cg_peak)), cg_fail)) if cg_peak else "n/a", big["wall_s"]))
else:
    print("| Fashion-MNIST train x%s | - | %.0f MiB | - | %s | %s (see logs/big.log) | - | - | - |" % (repeat, mib(raw), how, big_rc))
print("\n### (b) Data wait with augmentation (CNN example, crop_padding 2 + flip, %s steps, medians of %d)\n" % (cnn_steps, rounds))
print("| data | loader threads | wall s | train compute s | data wait s | wait / wall | wait / compute |")
print("|---|---|---|---|---|---|---|")
for v, threads in (("memory", 1), ("packed", 2)):
    runs = [load("cnn-%s-%d" % (v, r)) for r in range(1, rounds + 1)]
    runs = [s for s in runs if s]
    if not runs: print("| %s | %d | failed | | | | |" % (v, threads)); continue
    w = med([s["wall_s"] for s in runs]); c = med([s["train_compute_s"] for s in runs]); d = med([s["data_wait_s"] for s in runs])
    print("| %s | %d | %.1f | %.1f | %.2f | %.2f%% | %.2f%% |" % (v, threads, w, c, d, 100 * d / w, 100 * d / c))
print("\n### (c) Throughput, one epoch of the MLP example (medians of %d)\n" % rounds)
print("| data | samples/s | wall s | data wait s |")
print("|---|---|---|---|")
for v in ("memory", "packed"):
    runs = [s for s in (load("mlp-%s-%d" % (v, r)) for r in range(1, rounds + 1)) if s]
    if not runs: print("| %s | failed | | |" % v); continue
    print("| %s | %.0f | %.1f | %.2f |" % (v, med([s["samples_seen"] / s["wall_s"] for s in runs]),
                                         med([s["wall_s"] for s in runs]), med([s["data_wait_s"] for s in runs])))
print("\n### (e) Accuracy, CNN example with crop + flip, %s epoch(s)\n" % acc_epochs)
print("| data | test accuracy | val accuracy | wall s |")
print("|---|---|---|---|")
for v in ("memory", "packed"):
    s = load("acc-" + v)
    if not s: print("| %s | failed | | |" % v); continue
    m = s["metrics"]
    print("| %s | %.4f | %.4f | %.0f |" % (v, m.get("test_accuracy") or float("nan"), m.get("val_accuracy") or float("nan"), s["wall_s"]))
EOF
