#!/usr/bin/env bash
# Installs the Debian packages frugal needs when any is missing, then configures and builds it.
# Usage: scripts/setup.sh [--test] [build-dir]   (default: build). Safe to rerun; needs root or sudo
# for apt. --test also installs what only the tests use (scripts/test.sh passes it).
set -euo pipefail
cd "$(dirname "$0")/.."
with_tests=0
if [ "${1:-}" = "--test" ]; then with_tests=1; shift; fi
build_dir="${1:-build}"

packages=(build-essential cmake ninja-build ccache pkg-config
  libdnnl-dev libgtest-dev libgmock-dev libbenchmark-dev zlib1g-dev libzstd-dev libsqlite3-dev
  libtomlplusplus-dev libcli11-dev nlohmann-json3-dev libcpp-httplib-dev
  openmpi-bin libopenmpi-dev  # mpirun and the mpi backend plugin (libfrugal_mpi.so, dist/mpi)
  ocl-icd-opencl-dev  # Debian's oneDNN is built with its OpenCL runtime: its CMake config requires OpenCL
  dataset-fashion-mnist bible-kjv
  diatheke sword-text-web sword-text-sparv)  # the WEB and Reina-Valera texts ([data] source = "bible-web", "bible-rv1909")
# For the tests only: headless Chromium opens the HTML reports and the dashboard, wrk loads the
# dashboard, Debian's python3 parses /metrics with prometheus_client.
# iproute2 makes the network namespaces of the multi-host MPI test.
test_packages=(chromium fonts-dejavu-core wrk python3 python3-prometheus-client iproute2)
((with_tests)) && packages+=("${test_packages[@]}")

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
fi

cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$build_dir"
