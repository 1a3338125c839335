#!/usr/bin/env bash
# The dashboard under load while a run trains on the same store (not a timed test: run by hand).
#  1. trains the Fashion-MNIST MLP alone (the baseline step time), then while wrk reads the
#     dashboard (/metrics, /api/runs, /, a run's rows and page) over 20 connections on loopback for
#     exactly the run's length, as fast as it can (saturating) and paced (100 ms between a
#     connection's requests, ~200/s); in rounds (3 by default) so a shared machine's drift hits all
#     alike; prints each run's step time and samples/s (from its summary), wrk's requests, errors
#     and latency percentiles, and the median step times;
#  2. a bounded run: exactly 10,000 requests (wrk stops each of its 2 threads at 5,000).
# The training, the dashboard and wrk share this machine's cores: the comparison shows the cost of
# serving, honestly. The dashboard runs at nice 10 (it sets that itself); wrk at WRK_NICE (default
# 10: a client is normally elsewhere; WRK_NICE=0 makes it compete with the training as an equal).
# Needs wrk (setup.sh --test) and the Fashion-MNIST data (dataset-fashion-mnist).
#   [WRK_NICE=10] bench/dashboard/load.sh [build/frugal] [epochs (3)] [rounds (3)]
set -euo pipefail
frugal=$(realpath "${1:-build/frugal}")
epochs=${2:-3}
repeats=${3:-3}
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

echo "== warm-up run (1 epoch, not counted: creates the store and reads the data into the page cache)"
"$frugal" train "$root/examples/fashion-mnist-mlp.toml" --quiet --out warm-up --set train.epochs=1 \
  --set run.store="$work/runs.db" > /dev/null
# The dashboard serves from here on (idle while a run trains alone).
"$frugal" dashboard --port 0 --store "$work/runs.db" > dashboard.out 2> dashboard.err &
dashboard_pid=$!
for _ in $(seq 100); do grep -q "http://" dashboard.out && break; sleep 0.1; done
port=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' dashboard.out)

dashboard_cpu() {  # user + system clock ticks of the dashboard process so far
  awk '{print $14 + $15}' "/proc/$dashboard_pid/stat"
}
echo "== wrk reads a mix of /metrics, /api/runs, /, a run's rows and a run's report page; it prints"
echo "   'Non-2xx or 3xx responses' and 'Socket errors' lines only when there are any"
echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
# Rounds of runs, alone then under load, so a shared machine's drift hits both alike.
for i in $(seq "$repeats"); do
  echo "== round $i: the run alone (dashboard idle)"
  train "alone-$i"
  run_id=$(/usr/bin/python3 -c "import json; print(json.load(open('alone-1.json'))['run_id'])")
  cat > mix.lua <<LUA
-- Cycles through the dashboard's read paths.
local paths = {"/metrics", "/api/runs", "/", "/api/runs/$run_id/metrics?after=1000", "/runs/$run_id"}
local i = 0
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
LUA
  for mode in saturating paced; do
    script=mix.lua
    if [[ $mode == paced ]]; then
      # Each connection waits 100 ms between requests: ~200 requests/s over 20 connections, a
      # room full of dashboards and a Prometheus scraping every second, not a flood.
      { cat mix.lua; echo 'delay = function() return 100 end'; } > paced.lua
      script=paced.lua
    fi
    echo "== round $i: the run while (nice $wrk_nice) wrk -t2 -c20 --latency ($mode) reads the dashboard for exactly its length"
    nice -n "$wrk_nice" wrk -t2 -c20 -d600s --latency -s "$script" "http://127.0.0.1:$port" > "wrk-$mode-$i.txt" &
    wrk_pid=$!
    sleep 0.3
    cpu_before=$(dashboard_cpu); t_before=$(date +%s.%N)
    train "$mode-$i"
    cpu_after=$(dashboard_cpu); t_after=$(date +%s.%N)
    kill -INT "$wrk_pid"  # wrk prints its statistics on SIGINT
    wait "$wrk_pid" || true
    /usr/bin/python3 -c "c = ($cpu_after - $cpu_before) / $(getconf CLK_TCK); t = $t_after - $t_before; print(f'   the dashboard used {c:.2f} CPU s in those {t:.1f} s ({c / t:.2f} of a core)')"
    sed -n '/Latency Distribution/,$p' "wrk-$mode-$i.txt" | sed 's/^/   /'
  done
done
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 - "$repeats" <<'PY'
import json, statistics, sys
n = int(sys.argv[1])
def step_ms(name):
    s = json.load(open(name + ".json"))
    return 1000 * s["train_compute_s"] / s["steps"]
alone = [step_ms(f"alone-{i}") for i in range(1, n + 1)]
print(f"== step time, ms: alone {[round(x, 2) for x in alone]} median {statistics.median(alone):.2f}")
for mode in ("saturating", "paced"):
    loaded = [step_ms(f"{mode}-{i}") for i in range(1, n + 1)]
    print(f"   under {mode} load {[round(x, 2) for x in loaded]} median {statistics.median(loaded):.2f} "
          f"({statistics.median(loaded) / statistics.median(alone):.2f}x the median alone)")
PY

echo "== 2. bounded: 10,000 requests (the same mix) over 20 connections, started with a run (wrk stops each"
echo "   of its 2 threads at 5,000 responses; its Requests/sec counts its whole -d window: not a rate)"
cat > bounded.lua <<LUA
$(cat mix.lua)
local count = 0
response = function(status, headers, body)
  count = count + 1
  if count >= 5000 then wrk.thread:stop() end
end
LUA
# -d: wrk waits out its whole window even when its threads have stopped, so the window is about the
# run's length (the run alone took ~6-9 s here); the 10,000 requests take a few seconds of it.
nice -n "$wrk_nice" wrk -t2 -c20 -d12s --latency -s bounded.lua "http://127.0.0.1:$port" > wrk-bounded.txt &
wrk_pid=$!
train bounded
wait "$wrk_pid" || true
sed -n '/Latency Distribution/,$p' wrk-bounded.txt | sed 's/^/   /'
curl -s "http://127.0.0.1:$port/metrics" | head -20
kill -TERM "$dashboard_pid"
wait "$dashboard_pid" && echo "== dashboard stopped with exit 0" || echo "== dashboard exit $?"
dashboard_pid=""
