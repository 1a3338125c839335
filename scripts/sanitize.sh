#!/usr/bin/env bash
# The sanitizer build: clang with AddressSanitizer and UndefinedBehaviorSanitizer (FRUGAL_SANITIZE,
# -O1 -g) plus the libFuzzer targets (FRUGAL_FUZZ) in build-asan; installs clang and its runtimes
# when missing, builds, and runs ctest on it (the whole suite by default, e.g. `-L unit` for the
# unit tests only). Any sanitizer report fails its test.
# Usage: scripts/sanitize.sh [ctest args...]
#        scripts/sanitize.sh --build-only [build-dir] [ninja targets...]   (used by tests/fuzz/run.sh)
# Environment: SANITIZE_BUILD (default build-asan), SANITIZE_TARGETS (ninja targets to build first,
# default all; e.g. "unit_tests fuzz_targets" with `-L unit`).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${SANITIZE_BUILD:-build-asan}"
build_only=0
read -r -a ninja_targets <<<"${SANITIZE_TARGETS:-}"
if [ "${1:-}" = "--build-only" ]; then
  build_only=1
  shift
  [ $# -gt 0 ] && { build="$1"; shift; }
  ninja_targets=("$@")
  set --
fi

packages=(clang libclang-rt-14-dev libomp-14-dev)  # clang 14: ASan/UBSan/libFuzzer runtimes, its OpenMP
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "sanitize: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
fi

if [ ! -f "$build/build.ninja" ]; then
  # Debug: assertions on; FRUGAL_SANITIZE adds -O1 after the build type's flags.
  CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=clang++ \
    -DFRUGAL_SANITIZE=ON -DFRUGAL_FUZZ=ON -DFRUGAL_BUILD_BENCH=OFF -DFRUGAL_INSTALL=OFF >/dev/null
fi
ninja -C "$build" -j2 --quiet "${ninja_targets[@]}"
((build_only)) && exit 0

# halt on the first UBSan report with its stack; ASan's defaults already abort on an error.
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_stack_use_after_return=0:strict_string_checks=1}"
start=$(date +%s)
status=0
ctest --test-dir "$build" --output-on-failure -j2 "$@" || status=$?
echo "sanitize: ctest exit $status in $(($(date +%s) - start)) s ($build, ASan + UBSan)"
exit "$status"
