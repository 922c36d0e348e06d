#!/usr/bin/env bash
# Packing the fio closure: `ktstr initramfs -i fio` against GNU cpio (and
# cpio | gzip) over the same files, staged in a directory beforehand.
# Usage: bench/pack.sh [RUNS]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
ktstr=${KTSTR:-$here/build/ktstr}
runs=${1:-5}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

"$ktstr" initramfs -i fio -o "$work/ref.cpio"
mkdir "$work/stage" && (cd "$work/stage" && cpio -idm --quiet <"$work/ref.cpio")

for i in $(seq "$runs"); do
  t0=$(now); "$ktstr" initramfs -i fio -o "$work/ours.cpio"; t1=$(now)
  echo "$t1 - $t0" | bc >>"$work/ours.t"
  t0=$(now); (cd "$work/stage" && find . | LC_ALL=C sort | cpio -o -H newc --quiet >"$work/cpio.cpio"); t1=$(now)
  echo "$t1 - $t0" | bc >>"$work/cpio.t"
  t0=$(now); (cd "$work/stage" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip >"$work/cpio.gz"); t1=$(now)
  echo "$t1 - $t0" | bc >>"$work/gzip.t"
done
ours=$(median <"$work/ours.t"); cpio=$(median <"$work/cpio.t"); gz=$(median <"$work/gzip.t")
printf 'fio closure: %d files, %d MB\n' "$(find "$work/stage" -type f | wc -l)" "$(( $(stat -c %s "$work/ours.cpio") >> 20 ))"
printf 'ktstr initramfs:   median %.3f s (resolve + closure + write), %d MB\n' "$ours" "$(( $(stat -c %s "$work/ours.cpio") >> 20 ))"
printf 'cpio -o -H newc:   median %.3f s (files already staged), %d MB\n' "$cpio" "$(( $(stat -c %s "$work/cpio.cpio") >> 20 ))"
printf 'cpio | gzip:       median %.3f s, %d MB\n' "$gz" "$(( $(stat -c %s "$work/cpio.gz") >> 20 ))"
printf 'ratio ktstr / cpio: %.2f; ktstr / cpio|gzip: %.2f\n' "$(echo "$ours / $cpio" | bc -l)" "$(echo "$ours / $gz" | bc -l)"
