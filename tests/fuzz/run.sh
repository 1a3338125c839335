#!/usr/bin/env bash
# Runs each libFuzzer target for SECONDS (default 30) on a scratch copy of its seed corpus, one
# target at a time; configures and builds the sanitizer build (build-asan, clang, ASan + UBSan) when
# needed. Prints the executions of each target; exits 1 on any finding (crash, sanitizer report,
# leak, timeout, more than 2 GB) and keeps the inputs that caused it under the scratch directory.
# Usage: tests/fuzz/run.sh [SECONDS] [TARGET...]   targets: idx csv npy text job safetensors checkpoint catalog pack_index
# Environment: FUZZ_BUILD (default build-asan), FUZZ_OUT (scratch, default a new mktemp -d),
# FUZZ_GROW=1 to merge the new inputs back into tests/fuzz/corpus (the committed seeds), FUZZ_RUNS=N
# to stop a target after N executions (whichever comes first), FUZZ_NO_BUILD=1 to use the build as is.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-30}"
[ $# -gt 0 ] && shift
targets=("$@")
((${#targets[@]})) || targets=(idx csv npy text job safetensors checkpoint catalog pack_index)
build="${FUZZ_BUILD:-build-asan}"
out="${FUZZ_OUT:-$(mktemp -d /tmp/frugal-fuzz.XXXXXX)}"

[ "${FUZZ_NO_BUILD:-0}" = 1 ] || scripts/sanitize.sh --build-only "$build" "${targets[@]/%/_fuzz}"
runs_limit=()
[ -n "${FUZZ_RUNS:-}" ] && runs_limit=(-runs="$FUZZ_RUNS")

failed=()
printf '%-12s %12s %8s %s\n' target executions exec/s result
for t in "${targets[@]}"; do
  work="$out/$t"
  mkdir -p "$work/corpus" "$work/artifacts"
  cp tests/fuzz/corpus/"$t"/* "$work/corpus/"
  dict=()
  [ -f tests/fuzz/dict/"$t".dict ] && dict=(-dict=tests/fuzz/dict/"$t".dict)
  set +e
  "$build/tests/fuzz/${t}_fuzz" -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=25 \
    -max_len=8192 -print_final_stats=1 "${runs_limit[@]}" "${dict[@]}" -artifact_prefix="$work/artifacts/" "$work/corpus" \
    >"$work/log" 2>&1
  status=$?
  set -e
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/log" | grep -o '[0-9]*$' || echo 0)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$work/log" | grep -o '[0-9]*$' || echo 0)
  if [ "$status" -eq 0 ]; then
    result=ok
  else
    result="FINDING (exit $status): $work/log, $(ls "$work/artifacts" | head -3 | tr '\n' ' ')"
    failed+=("$t")
  fi
  printf '%-12s %12s %8s %s\n' "$t" "$runs" "$rate" "$result"
  if [ "${FUZZ_GROW:-0}" = 1 ] && [ "$status" -eq 0 ]; then
    "$build/tests/fuzz/${t}_fuzz" -merge=1 -rss_limit_mb=2048 tests/fuzz/corpus/"$t" "$work/corpus" >/dev/null 2>&1
  fi
done
if ((${#failed[@]})); then
  echo "fuzz: findings in ${failed[*]} (logs and inputs under $out)" >&2
  exit 1
fi
echo "fuzz: no findings (logs under $out)"
