#!/usr/bin/env bash
# Federated averaging on Fashion-MNIST (issue 19): examples/fashion-mnist-fedavg.toml (the README MLP,
# 10 clients, all in every round, LOCAL_EPOCHS local epochs, ROUNDS rounds) three ways with the same
# settings: FedAvg on a Dirichlet(ALPHA) non-IID split, FedProx (MU) on the same split, FedAvg on an
# IID split. The table gives, per method, the first round (and the bytes exchanged by then: each
# sampled client downloads and uploads the model, 2 x floats x 4 B) at which the global model reached
# TARGET accuracy on the validation split (what the run itself reports) and on the test split (from
# the round rows), and the final test accuracy. Quality does not depend on the machine's load; times
# do. SEEDS (default "1") repeats each method with run.seed = each (the split, the clients sampled,
# the model's init and every client's data order). About 10-15 min per seed on 2 quiet cores with the
# defaults. Runs already done are kept (a rerun resumes the table).
# Usage: bench/federated/run.sh [FRUGAL_BINARY] [WORK_DIR]
set -u
repo=$(cd "$(dirname "$0")/../.." && pwd)
frugal=$(realpath "${1:-$repo/build/frugal}")
work=${2:-/tmp/frugal-federated}
rounds=${ROUNDS:-30} local_epochs=${LOCAL_EPOCHS:-2} alpha=${ALPHA:-0.3} mu=${MU:-0.01} target=${TARGET:-0.85}
mkdir -p "$work/runs" "$work/logs" && cd "$work" || exit 1
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores (times depend on the machine's load)"
# The example up to its [federated] section, then each method's section.
base=$(sed '/^\[federated\]/,$d' "$repo/examples/fashion-mnist-fedavg.toml")
common="clients = 10\nclients_per_round = 10\nrounds = $rounds\nlocal_epochs = $local_epochs\ntarget_accuracy = $target\n"
declare -A sections=(
  [fedavg-dirichlet]="algorithm = \"fedavg\"\nsplit = \"dirichlet\"\nalpha = $alpha\n"
  [fedprox-dirichlet]="algorithm = \"fedprox\"\nmu = $mu\nsplit = \"dirichlet\"\nalpha = $alpha\n"
  [fedavg-iid]="algorithm = \"fedavg\"\nsplit = \"iid\"\n"
)
for seed in ${SEEDS:-1}; do
  for name in fedavg-dirichlet fedprox-dirichlet fedavg-iid; do
    printf '%s\n' "$base" > "$name.toml"
    printf '\n[federated]\n%b%b' "${sections[$name]}" "$common" >> "$name.toml"
    [ -f "runs/$name-s$seed/summary.json" ] && continue
    "$frugal" train "$name.toml" --out "runs/$name-s$seed" --resume auto --set run.store='"runs.db"' \
      --set run.seed="$seed" > "logs/$name-s$seed.log" 2>&1 || echo "   $name seed $seed failed: $(tail -1 "logs/$name-s$seed.log")"
  done
done
python3 - "$work" "$target" ${SEEDS:-1} <<'PY'
import json, sys, os
work, target, seeds = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
print(f"| method | seed | rounds to {target:.0%} val | MB by then | rounds to {target:.0%} test | MB by then | final test accuracy | rounds | MB in all | label skew | wall s |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for name, seed in [(n, s) for s in seeds for n in ["fedavg-dirichlet", "fedprox-dirichlet", "fedavg-iid"]]:
    path = os.path.join(work, "runs", f"{name}-s{seed}")
    try:
        s = json.load(open(os.path.join(path, "summary.json")))
    except OSError:
        print(f"| {name} | {seed} | (no summary) |"); continue
    f = s["techniques"]["federated"]
    rows = [json.loads(l) for l in open(os.path.join(path, "metrics.jsonl")) if '"round"' in l]
    rows = [r for r in rows if r.get("kind") == "round"]
    test = next((r for r in rows if r.get("test_accuracy", 0) >= target), None)
    mb = lambda b: f"{b / 1e6:.1f}"
    val_round = f.get("target_round")
    print(f"| {name} | {seed} | {val_round if val_round is not None else 'not reached'} | "
          f"{mb(f['target_bytes']) if f.get('target_bytes') is not None else '-'} | "
          f"{test['round'] if test else 'not reached'} | {mb(test['bytes']) if test else '-'} | "
          f"{100 * s['metrics']['test_accuracy']:.2f}% | {f['rounds']} | {mb(f['bytes'])} | {f['label_skew']:.3f} | {s['wall_s']:.0f} |")
PY
