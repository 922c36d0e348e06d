#!/usr/bin/env bash
# Boots the set-up's 6.1 kernel (no sched_ext) with old_kernel_suite: the EEVDF test must pass
# and the scheduler test be skipped with the reason.   usage: old_kernel.sh SUITE
# Exits 77 (CTest's skip) when the set-up could not fetch a 6.1 kernel.
set -uo pipefail
suite=$1
kernels=${KTSTR_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ktstr}/kernels
kernel=$(ls -d "$kernels"/6.1.*/vmlinuz 2>/dev/null | sort -V | tail -n1)
if [ -z "$kernel" ]; then
  echo "old_kernel: no 6.1 kernel in $kernels (scripts/setup.sh fetches bookworm's); skipped"
  exit 77
fi

out=$("$suite" --kernel "$kernel" -j 1 2>&1)
rc=$?
printf '%s\n' "$out"
fail() { printf 'old_kernel: FAIL: %s\n' "$*" >&2; exit 1; }
[ "$rc" = 0 ] || fail "the suite exited with $rc"
grep -Eq 'kernel 6\.1\.' <<<"$out" || fail "the suite did not boot the 6.1 kernel"
grep -Eq '^PASS +eevdf_runs_on_old_kernel \[eevdf\]' <<<"$out" || fail "the EEVDF test did not pass"
grep -Eq '^SKIP +fixture_skips_on_old_kernel \[ktstr_fixture\]' <<<"$out" ||
  fail "the scheduler test was not skipped"
grep -q "skipped: this kernel has no sched_ext" <<<"$out" || fail "the skip gives no reason"
grep -q "1 passed, 0 failed, 1 skipped, 0 errors" <<<"$out" || fail "the summary is wrong"
echo "old_kernel: PASS"
