#!/usr/bin/env bash
# Installs what is missing, builds, runs the whole test suite (unit, golden, e2e), then checks the
# installed package (scripts/check_install.sh: find_package(frugal) from examples/cpp, installed frugal).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
ctest --test-dir build --output-on-failure -j2 "$@"
scripts/check_install.sh build
