#!/usr/bin/env bash
# Installs the Debian packages frugal needs when any is missing, then configures and builds it.
# Usage: scripts/setup.sh [build-dir]   (default: build). Safe to rerun; needs root or sudo for apt.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${1:-build}"

packages=(build-essential cmake ninja-build ccache pkg-config
  libdnnl-dev libgtest-dev libgmock-dev libbenchmark-dev zlib1g-dev libzstd-dev libsqlite3-dev
  libtomlplusplus-dev libcli11-dev nlohmann-json3-dev libcpp-httplib-dev
  ocl-icd-opencl-dev  # Debian's oneDNN is built with its OpenCL runtime: its CMake config requires OpenCL
  dataset-fashion-mnist bible-kjv
  diatheke sword-text-web sword-text-sparv)  # the WEB and Reina-Valera texts ([data] source = "bible-web", "bible-rv1909")

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
