#!/usr/bin/env bash
# Several hosts without a cluster: N network namespaces (h1..hN, 10.77.0.1..N/24) on a bridge in a
# launcher namespace (10.77.0.254), one MPI rank per namespace, `mpirun --host` over TCP only. Open
# MPI starts its remote daemons through --mca plm_rsh_agent, here a script that runs the daemon in
# the namespace of the address it was given (and its own UTS namespace named hK, so each rank sees
# its own host name) instead of ssh. Checks: dist_probe passes on every rank, the ranks report
# distinct hosts, and the veth byte counters grew by at least what the ranks counted as sent.
# With --train JOB: also trains JOB across the namespaces and compares model.safetensors with one
# process (`cmp`) run with train.grad_accum = N.
#
# Usage: mpi_netns.sh BUILD_DIR [--ranks N] [--train JOB.toml] [--alltoall-mib M] [--repeat K]
# Exit 0 pass, 1 fail, 77 skipped (not root, no `ip netns`, no mpirun, no MPI plugin).
# Limits: needs root (network namespaces); everything it creates lives in namespaces named
# frugal-mpi-<pid>-*, removed on exit, whatever the outcome.
set -u -o pipefail

build=${1:?usage: mpi_netns.sh BUILD_DIR [--ranks N] [--train JOB.toml] [--alltoall-mib M]}
shift
build=$(cd "$build" && pwd)
ranks=2 job="" mib=16 repeat=3
while [ $# -gt 0 ]; do
  case "$1" in
    --ranks) ranks=$2; shift 2 ;;
    --train) job=$(realpath "$2"); shift 2 ;;
    --alltoall-mib) mib=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    *) echo "mpi_netns.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

skip() { echo "SKIPPED: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "network namespaces need root"
command -v ip >/dev/null || skip "no ip (iproute2)"
command -v mpirun >/dev/null || skip "no mpirun (Debian's openmpi-bin)"
command -v unshare >/dev/null || skip "no unshare (util-linux)"
[ -x "$build/dist_probe" ] || skip "no $build/dist_probe (ninja dist_probe)"
[ -f "$build/libfrugal_mpi.so" ] || skip "no $build/libfrugal_mpi.so (the MPI plugin was not built)"

prefix="frugal-mpi-$$"
head_ns="$prefix-0"
work=$(mktemp -d /tmp/frugal-mpi-netns.XXXXXX)
cleanup() {
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$prefix-"); do ip netns del "$ns"; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

ip netns add "$head_ns" 2>/dev/null || skip "ip netns add is not permitted here"
fail() { echo "FAIL: $*" >&2; exit 1; }
# The bridge and every veth pair are created inside namespaces, so deleting them removes all.
ip -n "$head_ns" link add br0 type bridge || fail "cannot create a bridge"
ip -n "$head_ns" addr add 10.77.0.254/24 dev br0
ip -n "$head_ns" link set br0 up
ip -n "$head_ns" link set lo up
hosts=""
for k in $(seq 1 "$ranks"); do
  ns="$prefix-$k"
  ip netns add "$ns"
  ip -n "$head_ns" link add "v$k" type veth peer name eth0 netns "$ns" || fail "cannot create veth v$k"
  ip -n "$head_ns" link set "v$k" master br0 up
  ip -n "$ns" addr add "10.77.0.$k/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
  echo "10.77.0.$k $ns h$k" >>"$work/hosts"
  hosts="$hosts${hosts:+,}10.77.0.$k"
done

# Open MPI calls the agent as `AGENT HOST COMMAND...` (like ssh, which hands the words to a shell).
cat >"$work/agent" <<EOF
#!/bin/sh
host=\$1; shift
line=\$(grep "^\$host " "$work/hosts") || { echo "agent: unknown host \$host" >&2; exit 1; }
set -- "\$(echo "\$line" | cut -d' ' -f2)" "\$(echo "\$line" | cut -d' ' -f3)" "\$*"
exec ip netns exec "\$1" unshare --uts /bin/sh -c "hostname \$2 && \$3"
EOF
chmod +x "$work/agent"

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# TCP between the namespaces only: no shared memory, no other interface.
mpi=(mpirun --oversubscribe -np "$ranks" --host "$hosts" --mca plm_rsh_agent "$work/agent"
     --mca btl tcp,self --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24)
in_head() { ip netns exec "$head_ns" "$@"; }
counter() { in_head cat "/sys/class/net/v$1/statistics/$2"; }  # rx of v$k = what rank k's host sent

declare -A before
for k in $(seq 1 "$ranks"); do before[$k]=$(counter "$k" rx_bytes); done
start=$(date +%s.%N)
in_head timeout 120 "${mpi[@]}" "$build/dist_probe" --alltoall-mib "$mib" --repeat "$repeat" >"$work/probe.out" 2>"$work/probe.err"
code=$?
seconds=$(echo "$(date +%s.%N) - $start" | bc)
cat "$work/probe.out"
[ $code = 0 ] || { cat "$work/probe.err" >&2; fail "mpirun dist_probe exited $code"; }
[ "$(grep -c '"ok":true' "$work/probe.out")" = "$ranks" ] || fail "not every rank printed ok"
distinct=$(grep -o '"host":"[^"]*"' "$work/probe.out" | sort -u | wc -l)
[ "$distinct" = "$ranks" ] || fail "$distinct distinct hosts for $ranks ranks"
for k in $(seq 1 "$ranks"); do
  rank=$((k - 1))  # --host order: rank r runs on the (r+1)-th address
  line=$(grep "\"rank\":$rank," "$work/probe.out")
  echo "$line" | grep -q "\"host\":\"h$k\"" || fail "rank $rank is not on h$k: $line"
  sent=$(echo "$line" | sed 's/.*"bytes_sent":\([0-9]*\).*/\1/')  # all the rank's collectives, timed ones included
  crossed=$(( $(counter "$k" rx_bytes) - before[$k] ))
  echo "h$k (rank $rank): counted $sent payload bytes sent, veth v$k carried $crossed bytes from h$k"
  [ "$crossed" -ge "$sent" ] || fail "the veth of h$k carried less than rank $rank sent"
done
echo "probe over $ranks namespaces: pass (${seconds}s)"

[ -n "$job" ] || exit 0
# Training across the namespaces against one process with grad_accum = N (the same micro-batches).
[ -x "$build/frugal" ] || fail "no $build/frugal"
accum=$(grep -E '^grad_accum *=' "$job" | head -1 | sed 's/.*= *//')
[ -n "$accum" ] || fail "$job sets no train.grad_accum (it must, equal to --ranks)"
[ "$accum" = "$ranks" ] || fail "$job has grad_accum = $accum, not $ranks"
mkdir -p "$work/one" "$work/many"
cp "$job" "$work/one/job.toml"
cp "$job" "$work/many/job.toml"
(cd "$work/one" && "$build/frugal" train job.toml --quiet --out out) >"$work/one.log" 2>&1 ||
  { cat "$work/one.log" >&2; fail "one-process training failed"; }
for k in $(seq 1 "$ranks"); do before[$k]=$(counter "$k" rx_bytes); done
# Every rank runs in its own namespace but the same file system, so all find the job file; rank 0 writes.
(cd "$work/many" && in_head timeout 600 "${mpi[@]}" "$build/frugal" train job.toml --quiet --out out) >"$work/many.log" 2>&1 ||
  { cat "$work/many.log" >&2; fail "training over $ranks namespaces failed"; }
# Ranks that did not form one world would each train alone and match trivially: the summary must
# say world size N, with rank r on host h(r+1).
python3 - "$work/many/out/summary.json" "$ranks" <<'PY' || fail "the run over $ranks namespaces was not one world of $ranks ranks on h1..h$ranks"
import json, sys
block = json.load(open(sys.argv[1])).get("techniques", {}).get("data_parallel", {})
n = int(sys.argv[2])
print("summary:", json.dumps(block))
sys.exit(0 if block.get("world_size") == n and block.get("hosts") == [f"h{k}" for k in range(1, n + 1)] else 1)
PY
crossed=0
for k in $(seq 1 "$ranks"); do crossed=$((crossed + $(counter "$k" rx_bytes) - before[$k])); done
sent=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["techniques"]["data_parallel"]["bytes_sent_total"]))' \
  "$work/many/out/summary.json")
echo "training: the ranks counted $sent payload bytes sent, the veth pairs carried $crossed bytes from the hosts"
[ "$crossed" -ge "$sent" ] || fail "the veth pairs carried less than the ranks sent"
cmp "$work/one/out/model.safetensors" "$work/many/out/model.safetensors" ||
  fail "model.safetensors of $ranks ranks over TCP differs from one process with grad_accum = $ranks"
echo "training over $ranks namespaces: model.safetensors bit-identical to one process ($(stat -c %s "$work/one/out/model.safetensors") bytes)"
