#!/usr/bin/env bash
# Boot-to-payload: `ktstr shell --exec true` against a bare QEMU boot of the
# same kernel with a busybox /init that runs `true` and powers off, with the
# same accelerator settings, memory and kernel command line. Prints each
# run's wall time, the medians, and their ratio (the harness's own cost).
# Usage: bench/boot.sh [RUNS]   (KTSTR: the ktstr binary, default build/ktstr)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
ktstr=${KTSTR:-$here/build/ktstr}
runs=${1:-5}
kernel=$("$ktstr" kernel list | head -n1)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

# The bare floor: busybox as /init's interpreter, nothing else.
mkdir -p "$work/root/bin"
cp /bin/busybox "$work/root/bin/busybox"
printf '#!/bin/busybox sh\n/bin/busybox true\n/bin/busybox poweroff -f\n' >"$work/root/init"
chmod 755 "$work/root/init"
(cd "$work/root" && find . | cpio -o -H newc --quiet >"$work/bare.cpio")

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

bare_once() {
  qemu-system-x86_64 -nodefaults -no-user-config -display none -no-reboot \
    -accel tcg,thread=single -cpu max -smp 2 -m 640 -kernel "$kernel" -initrd "$work/bare.cpio" \
    -append "console=ttyS0 panic=-1 oops=panic rdinit=/init quiet loglevel=1" \
    -chardev file,id=con,path="$work/bare.log" -serial chardev:con
}

: >"$work/bare.times"; : >"$work/ktstr.times"
for i in $(seq "$runs"); do
  t0=$(now); bare_once; t1=$(now)
  echo "$t1 - $t0" | bc >>"$work/bare.times"
  t0=$(now); KTSTR_ACCEL=tcg "$ktstr" shell --exec true 2>/dev/null; t1=$(now)
  echo "$t1 - $t0" | bc >>"$work/ktstr.times"
done
bare=$(median <"$work/bare.times")
ours=$(median <"$work/ktstr.times")
echo "bare qemu boot (s):       $(tr '\n' ' ' <"$work/bare.times")"
echo "ktstr shell --exec true:  $(tr '\n' ' ' <"$work/ktstr.times")"
printf 'median bare %.2f s, ktstr %.2f s, ratio %.3f\n' "$bare" "$ours" "$(echo "$ours / $bare" | bc -l)"
