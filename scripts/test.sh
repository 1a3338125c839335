#!/usr/bin/env bash
# Installs what is missing, builds, runs the whole test suite (unit, golden, e2e), then checks the
# installed package (scripts/check_install.sh: find_package(frugal) from examples/cpp, installed frugal).
# Then the sanitizer pass: the unit tests once under ASan + UBSan (scripts/sanitize.sh, clang, in
# build-asan) and each parser's fuzz target for 30 s (tests/fuzz/run.sh). FRUGAL_TEST_SANITIZE=0 skips it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test build
ctest --test-dir build --output-on-failure -j2 "$@"
scripts/check_install.sh build
if [ "${FRUGAL_TEST_SANITIZE:-1}" != 0 ]; then
  SANITIZE_TARGETS="unit_tests fuzz_targets" scripts/sanitize.sh -L unit
  tests/fuzz/run.sh 30
fi
