#!/usr/bin/env bash
# Data-parallel scaling on paper (issue 19). This machine has 2 cores, so N-host speed-ups cannot be
# measured; measured instead: (1) per step, compute time and bytes sent for the MLP, CNN and GPT
# examples (1 thread per rank, train.grad_accum = 2 micro-batches of the example's batch) at 1 process
# and at `mpirun -np 2`, with the wait time the ranks report (summary `dist` block, when the
# data-parallel technique writes one); (2) the transport's bandwidth: dist_probe timing alltoalls of
# ALLTOALL_MIB (64) MiB per rank over shared memory, TCP on loopback and, as root, TCP over a veth
# pair between network namespaces (tests/e2e/mpi_netns.sh); (3) model.py's table of N hosts from them.
# Usage: bench/dist_scaling/run.sh [FRUGAL_BINARY] [WORK_DIR]   (dist_probe is taken next to frugal)
# STEPS_MLP / STEPS_CNN / STEPS_GPT (400 / 120 / 30) set the steps timed per run. ~5 min on 2 cores.
set -u
repo=$(cd "$(dirname "$0")/../.." && pwd)
frugal=$(realpath "${1:-$repo/build/frugal}")
build=$(dirname "$frugal")
work=${2:-/tmp/frugal-dist-scaling}
mib=${ALLTOALL_MIB:-64}
mkdir -p "$work" && cd "$work" || exit 1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=passive
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores, load before: $(cut -d' ' -f1-3 /proc/loadavg)"

# The example with a fixed number of steps (a 5-step warm-up, so the schedule fits them); the run's
# settings (1 thread, 2 micro-batches, no evaluation before the end) are `sets`.
job() {  # job NAME EXAMPLE STEPS
  sed -e "s/^epochs = .*/steps = $3/" -e "s/^steps = .*/steps = $3/" -e "s/^warmup_steps = .*/warmup_steps = 5/" \
      "$repo/examples/$2" > "$1.toml"
}
sets=(--set run.threads=1 --set train.grad_accum=2 --set train.eval_every=1000000 --set train.log_every=1000000)
job mlp fashion-mnist-mlp.toml "${STEPS_MLP:-400}"
job cnn fashion-mnist-cnn.toml "${STEPS_CNN:-120}"
job gpt kjv-gpt.toml "${STEPS_GPT:-30}"

for name in mlp cnn gpt; do
  rm -rf "runs/$name-1" "runs/$name-2"
  "$frugal" train "$name.toml" "${sets[@]}" --quiet --out "runs/$name-1" > "$name-1.log" 2>&1 || echo "$name at 1 process failed: $(tail -1 "$name-1.log")"
  mpirun --oversubscribe -np 2 --bind-to none "$frugal" train "$name.toml" "${sets[@]}" --quiet --out "runs/$name-2" > "$name-2.log" 2>&1 ||
    echo "$name at 2 ranks failed: $(tail -1 "$name-2.log")"
  # Two ranks that did not form one world would each train alone (and match trivially): ask the summary.
  world=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("techniques",{}).get("data_parallel",{}).get("world_size",1))' \
    "runs/$name-2/summary.json" 2>/dev/null)
  if [ "${world:-0}" != 2 ]; then echo "$name: the mpirun -np 2 run did not train as a world of 2 (world size ${world:-?})"
  elif cmp -s "runs/$name-1/model.safetensors" "runs/$name-2/model.safetensors"; then echo "$name: 2 ranks bit-identical to 1 process"
  else echo "$name: 2 ranks NOT bit-identical to 1 process"; fi
done

probe() {  # probe LABEL MPIRUN-ARGS...: best alltoall of $mib MiB per rank, and of 1 KiB (latency)
  local label=$1; shift
  mpirun --oversubscribe -np 2 "$@" "$build/dist_probe" --alltoall-mib "$mib" --repeat 5 > "bw-$label.json" 2> "bw-$label.err" ||
    echo "probe $label failed: $(tail -1 "bw-$label.err")"
  mpirun --oversubscribe -np 2 "$@" "$build/dist_probe" --alltoall-mib 0.001 --repeat 200 > "lat-$label.json" 2>> "bw-$label.err"
}
probe shm
probe tcp-loopback --mca btl self,tcp
if [ "$(id -u)" = 0 ]; then
  bash "$repo/tests/e2e/mpi_netns.sh" "$build" --alltoall-mib "$mib" > veth.out 2>&1 || echo "veth probe failed: $(tail -1 veth.out)"
  grep '^{' veth.out > bw-veth.json
  bash "$repo/tests/e2e/mpi_netns.sh" "$build" --alltoall-mib 0.001 --repeat 200 > veth-lat.out 2>&1 && grep '^{' veth-lat.out > lat-veth.json
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 "$repo/bench/dist_scaling/model.py" "$work"
