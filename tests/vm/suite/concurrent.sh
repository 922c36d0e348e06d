#!/usr/bin/env bash
# Two invocations of one suite at once, on one cold initramfs cache: both must pass, each in
# its own VM and temp dirs, each reporting only its own guest's output, and nothing may be left
# behind in $TMPDIR.   usage: concurrent.sh SUITE
set -uo pipefail
suite=$1
fail() { printf 'concurrent: FAIL: %s\n' "$*" >&2; exit 1; }

kernel=${KTSTR_KERNEL:-${KTSTR_CACHE_DIR:-$HOME/.cache/ktstr}/kernels/default/vmlinuz}
[ -f "$kernel" ] || fail "no kernel at $kernel (run scripts/setup.sh)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/tmp" "$work/cache"
# A fresh cache: both runs miss it and write the same initramfs entry at the same time.
export TMPDIR=$work/tmp KTSTR_CACHE_DIR=$work/cache

for run in a b; do
  "$suite" --exact concurrent_marker -j 1 --kernel "$kernel" --junit "$work/$run.xml" \
    >"$work/$run.out" 2>&1 &
  eval "pid_$run=$!"
done

# Both VMs' temp dirs must exist at once, side by side.
most=0
while kill -0 "$pid_a" 2>/dev/null || kill -0 "$pid_b" 2>/dev/null; do
  n=$(find "$TMPDIR" -mindepth 1 -maxdepth 1 -name 'ktstr-test.*' | wc -l)
  [ "$n" -gt "$most" ] && most=$n
  sleep 0.2
done
wait "$pid_a"; rc_a=$?
wait "$pid_b"; rc_b=$?
for run in a b; do printf -- '--- run %s\n' "$run"; cat "$work/$run.out"; done

[ "$rc_a" = 0 ] || fail "run a exited with $rc_a"
[ "$rc_b" = 0 ] || fail "run b exited with $rc_b"
for run in a b; do
  grep -Eq '^PASS +concurrent_marker' "$work/$run.out" || fail "run $run did not pass"
  [ "$(grep -c 'boot_id=' "$work/$run.xml")" = 1 ] || fail "run $run's JUnit does not hold one boot id"
done
id_a=$(grep -o 'boot_id=[0-9a-f-]*' "$work/a.xml")
id_b=$(grep -o 'boot_id=[0-9a-f-]*' "$work/b.xml")
echo "concurrent: run a: $id_a, run b: $id_b, test temp dirs at once: $most"
[ "$id_a" != "$id_b" ] || fail "both runs report the same guest ($id_a)"
[ "$most" -ge 2 ] || fail "the two runs never had their temp dirs at the same time (max $most)"
left=$(find "$TMPDIR" -mindepth 1 | head -n 5)
[ -z "$left" ] || fail "left behind in TMPDIR: $left"
[ "$(find "$KTSTR_CACHE_DIR/initramfs" -type f -name '*.cpio.*' | wc -l)" = 0 ] ||
  fail "a half-written initramfs is left in the cache"
echo "concurrent: PASS"
