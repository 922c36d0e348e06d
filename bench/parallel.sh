#!/usr/bin/env bash
# Eight one-vCPU suite tests (bench/parallel_suite.cpp, about 1 s of work each) with -j 1
# and with -j 2; prints both wall times and the speed-up (target >= 1.7x on 2 host cores).
# Usage: bench/parallel.sh [RUNS]   (SUITE: the suite binary, default build/bench/parallel_suite)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
suite=${SUITE:-$here/build/bench/parallel_suite}
runs=${1:-1}

"$suite" --exact one_vcpu_0 2>/dev/null  # warms the cache
: >"$work/j1.t"; : >"$work/j2.t"
for _ in $(seq "$runs"); do
  timed "$work/j1.t" "$suite" -j 1 2>"$work/j1.err" \
    || { cat "$work/j1.err" >&2; exit 1; }
  timed "$work/j2.t" "$suite" -j 2 2>"$work/j2.err" \
    || { cat "$work/j2.err" >&2; exit 1; }
done
j1=$(median <"$work/j1.t"); j2=$(median <"$work/j2.t")
echo "-j 1 (s): $(times_of "$work/j1.t")"
echo "-j 2 (s): $(times_of "$work/j2.t")"
printf 'median -j 1 %.1f s, -j 2 %.1f s, speed-up %.2fx (target >= 1.7)\n' "$j1" "$j2" "$(ratio "$j1" "$j2")"
