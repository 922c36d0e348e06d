#!/usr/bin/env bash
# N `ktstr shell --exec true` in a row with the default settings (single-threaded TCG),
# then N with the fastest unsafe one (multi-threaded TCG, KTSTR_TCG_THREAD=multi), counting
# failures and early-boot retries (ktstr retries an early panic once and says so), and what
# the safe default costs against the unsafe one.
# Usage: bench/reliability.sh [N [N_UNSAFE]]   (N_UNSAFE: runs of the unsafe setting, default N)
set -uo pipefail
source "$(dirname "$0")/lib.sh"
n=${1:-200}
n_unsafe=${2:-$n}

series() {  # series NAME THREAD RUNS
  local name=$1 thread=$2 n=$3 fails=0 retries=0
  : >"$work/$name.t"
  for i in $(seq "$n"); do
    if ! timed "$work/$name.t" env KTSTR_TCG_THREAD="$thread" \
         "$ktstr" shell --exec true >/dev/null 2>"$work/err"; then
      fails=$((fails + 1))
      echo "  $name run $i failed: $(grep -m1 'ktstr: error' "$work/err")"
      grep -m1 -E 'Kernel panic|Oops' "$work/err" | sed 's/^/    /'
    fi
    grep -q 'retried once' "$work/err" && retries=$((retries + 1))
  done
  printf '%-24s %d runs, %d failed, %d retried, median %.2f s\n' "$name" "$n" "$fails" \
    "$retries" "$(median <"$work/$name.t")"
}

"$ktstr" shell --exec true >/dev/null 2>&1  # warms the initramfs cache
series "default (thread=single)" single "$n"
series "unsafe (thread=multi)" multi "$n_unsafe"
printf 'the default costs %.3fx the unsafe setting\n' \
  "$(ratio "$(median <"$work/default (thread=single).t")" "$(median <"$work/unsafe (thread=multi).t")")"
