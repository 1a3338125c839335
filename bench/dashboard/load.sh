#!/usr/bin/env bash
# The dashboard under load while a run trains on the same store (not a timed test: run by hand).
#  1. trains the Fashion-MNIST MLP alone (the baseline step time);
#  2. trains it again while wrk hammers the dashboard (/metrics, /api/runs, /, the run's rows) over
#     20 connections on loopback for the whole run; prints both runs' step time and samples/s
#     (from their summaries) and wrk's requests, errors and latency percentiles;
#     then alone again, to bracket the noise of a shared machine;
#  3. a bounded run: exactly 10,000 requests (wrk stops each of its 2 threads at 5,000).
# The training, the dashboard and wrk share this machine's cores: the comparison shows the cost of
# serving, honestly. The dashboard runs at nice 10 (it sets that itself); wrk at WRK_NICE (default
# 10: a client is normally elsewhere; WRK_NICE=0 makes it compete with the training as an equal).
# Needs wrk (setup.sh --test) and the Fashion-MNIST data (dataset-fashion-mnist).
#   [WRK_NICE=10] bench/dashboard/load.sh [build/frugal] [epochs (3)]
set -euo pipefail
frugal=$(realpath "${1:-build/frugal}")
epochs=${2:-3}
wrk_nice=${WRK_NICE:-10}
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/frugal-dashboard-load.XXXXXX)
dashboard_pid=""
cleanup() {
  if [[ -n "$dashboard_pid" ]]; then kill "$dashboard_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

echo "== machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
train() {  # $1 = out dir; prints the summary's step time and throughput
  "$frugal" train "$root/examples/fashion-mnist-mlp.toml" --quiet --json --out "$1" \
    --set train.epochs="$epochs" --set train.log_every=10 --set run.store="$work/runs.db" | tail -1 > "$1.json"
  /usr/bin/python3 - "$1.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
steps, compute = s["steps"], s["train_compute_s"]
print(f"   steps {steps}, wall {s['wall_s']:.1f} s, train compute {compute:.1f} s, "
      f"step {1000 * compute / steps:.2f} ms, {s['samples_seen'] / compute:.0f} samples/s, "
      f"test_accuracy {s['metrics'].get('test_accuracy', float('nan')):.4f}")
PY
}

echo "== 1. the run alone"
start=$(date +%s.%N)
train alone
seconds=$(/usr/bin/python3 -c "print(max(5, round($(date +%s.%N) - $start)))")

"$frugal" dashboard --port 0 --store "$work/runs.db" > dashboard.out 2> dashboard.err &
dashboard_pid=$!
for _ in $(seq 100); do grep -q "http://" dashboard.out && break; sleep 0.1; done
port=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' dashboard.out)
run_id=$(/usr/bin/python3 -c "import json; print(json.load(open('alone.json'))['run_id'])")
cat > mix.lua <<LUA
-- Cycles through the dashboard's read paths.
local paths = {"/metrics", "/api/runs", "/", "/api/runs/$run_id/metrics?after=1000", "/runs/$run_id"}
local i = 0
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
LUA
echo "== 2. the run while (nice $wrk_nice) wrk -t2 -c20 -d${seconds}s hammers http://127.0.0.1:$port/ (mix of /metrics, /api/runs, /, rows, run page)"
nice -n "$wrk_nice" wrk -t2 -c20 -d"${seconds}s" --latency -s mix.lua "http://127.0.0.1:$port" > wrk-during.txt &
wrk_pid=$!
train loaded
wait "$wrk_pid"
cat wrk-during.txt
echo "== 2b. the run alone again (with the dashboard idle), to bracket the machine's own noise"
train alone-again

echo "== 3. bounded: 10,000 requests of /metrics over 20 connections (no training; wrk stops each thread at"
echo "   5,000 responses but reports its whole -d window, so its Requests/sec is meaningless here)"
cat > bounded.lua <<'LUA'
-- Each of the 2 threads stops after 5000 responses: 10,000 in all.
local count = 0
response = function(status, headers, body)
  count = count + 1
  if count >= 5000 then wrk.thread:stop() end
end
LUA
wrk -t2 -c20 -d20s --latency -s bounded.lua "http://127.0.0.1:$port/metrics"
curl -s "http://127.0.0.1:$port/metrics" | head -20
kill -TERM "$dashboard_pid"
wait "$dashboard_pid" && echo "== dashboard stopped with exit 0" || echo "== dashboard exit $?"
dashboard_pid=""
