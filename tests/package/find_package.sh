#!/usr/bin/env bash
# find_package(ktstr CONFIG) works from the build tree and from an install
# prefix: a consumer project configures, builds, and lists its test through
# the registered CTest test.
# Usage: find_package.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 build=$2
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
check() {  # label, cmake args...
  local label=$1; shift
  cmake -S "$src/tests/package/consumer" -B "$work/$label" -G Ninja "$@" >"$work/$label.log" 2>&1 \
    || { cat "$work/$label.log"; echo "FAIL: configure ($label)"; exit 1; }
  cmake --build "$work/$label" >>"$work/$label.log" 2>&1 \
    || { cat "$work/$label.log"; echo "FAIL: build ($label)"; exit 1; }
  [ "$("$work/$label/consumer_suite" --list)" = consumer_true ] || { echo "FAIL: --list ($label)"; exit 1; }
  listed=$(cd "$work/$label" && ctest -N)
  grep -q "consumer_suite: consumer_true" <<<"$listed" \
    || { echo "FAIL: ctest does not list the test ($label)"; exit 1; }
  echo "ok: $label"
}
check build-tree -Dktstr_DIR="$build"
cmake --install "$build" --prefix "$work/prefix" >/dev/null
check install-prefix -DCMAKE_PREFIX_PATH="$work/prefix"
[ -x "$work/prefix/libexec/ktstr/ktstr-init" ] || { echo "FAIL: no ktstr-init installed"; exit 1; }
echo "PASS: find_package"
