#!/usr/bin/env bash
# Checks the installed package: installs the build into a temporary prefix, builds examples/cpp
# against it with find_package(frugal) in a separate build directory and runs it, then runs the
# installed `frugal` on a tiny CSV job and checks it priced the run with the installed catalog.
# Usage: scripts/check_install.sh [build-dir]   (default: build; set up and built when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${1:-build}"

if [ -f "$build_dir/build.ninja" ]; then
  cmake --build "$build_dir"
else
  scripts/setup.sh "$build_dir"
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
tmp="$(realpath "$tmp")"  # the installed binary reports paths through /proc/self/exe, resolved
fail() { echo "check_install: $*" >&2; exit 1; }

echo "check_install: installing into $tmp"
cmake --install "$build_dir" --prefix "$tmp" >/dev/null
for f in include/frugal/nn/zoo.h include/frugal/kernels/ref/dense.h include/frugal/kernels/cpu/dense.h \
         bin/frugal share/frugal/catalog/instances.toml; do
  [ -f "$tmp/$f" ] || fail "missing $tmp/$f"
done
[ ! -e "$tmp/include/frugal/cli" ] || fail "the CLI's sources were installed as headers"
config="$(find "$tmp" -name frugalConfig.cmake)"
[ -n "$config" ] || fail "no frugalConfig.cmake under $tmp"
libdir="$(dirname "$(dirname "$(dirname "$config")")")"
for lib in base tensor kernels autograd nn optim data io track cost train; do
  [ -f "$libdir/libfrugal_$lib.a" ] || fail "missing $libdir/libfrugal_$lib.a"
done
! grep -q -- "-march" "$(dirname "$config")"/*.cmake || fail "-march leaks into the exported targets"

echo "check_install: building examples/cpp against the installed package"
cmake -S examples/cpp -B "$tmp/build-example" -G Ninja -DCMAKE_PREFIX_PATH="$tmp" >/dev/null
cmake --build "$tmp/build-example"
# One epoch of Fashion-MNIST through the training loop with the example's own model and technique.
mkdir "$tmp/ema"
example="$(cd "$tmp/ema" && "$tmp/build-example/train_with_ema" --set train.epochs=1 --out run </dev/null)"
echo "$example" | head -n -1
grep -q '"ema":{' <<<"$(tail -n 1 <<<"$example")" || fail "the example's summary has no EMA figures"
[ -f "$tmp/ema/run/ema.safetensors" ] || fail "the example wrote no ema.safetensors"

echo "check_install: running the installed frugal"
"$tmp/bin/frugal" --version
mkdir "$tmp/job"
{
  echo "x,y,label"
  for i in $(seq 0 99); do echo "$((i % 10)),$((i % 3)),$((i % 2))"; done
} >"$tmp/job/data.csv"
printf '[data]\nkind = "csv"\ntrain = "data.csv"\n[model]\nkind = "mlp"\n[train]\nepochs = 1\n' >"$tmp/job/job.toml"
summary="$(cd "$tmp/job" && "$tmp/bin/frugal" train job.toml --set train.epochs=2 --set 'model.hidden=[8]' \
  --set run.threads=1 --set data.val_fraction=0.2 --out run --quiet --json </dev/null | tail -n 1)"
grep -q '"status":"completed"' <<<"$summary" || fail "the installed frugal's run did not complete: $summary"
catalog="$tmp/share/frugal/catalog/instances.toml"
grep -qF "\"catalog\":\"$catalog\"" <<<"$summary" || fail "the installed frugal did not use $catalog: $summary"
echo "check_install: ok (installed headers, libraries, CMake package, frugal and its catalog)"
