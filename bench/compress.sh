#!/usr/bin/env bash
# Initramfs compression under the accelerator ktstr picks: `ktstr shell -i fio --exec
# 'fio --version'` with --compress none (the baseline) against gzip, lz4 and zstd, runs
# interleaved, archives already cached (packing is bench/pack.sh's business). Each row
# shows the median phases where compression moves time (qemu start: loading the archive;
# boot to init: unpacking it). Usage: bench/compress.sh [RUNS]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
runs=${1:-3}
codecs=(none gzip lz4 zstd)

phase_ms() { sed -nE "s/.*$1 ([0-9]+) ms.*/\\1/p" "$2" | median; }

for c in "${codecs[@]}"; do  # warms the cache, and shows each archive's size
  "$ktstr" shell --compress "$c" -i fio --exec true >/dev/null 2>"$work/$c.warm"
  : >"$work/$c.t"; : >"$work/$c.phases"
done
for _ in $(seq "$runs"); do
  for c in "${codecs[@]}"; do
    timed "$work/$c.t" "$ktstr" shell --compress "$c" -i fio --exec 'fio --version' \
      >/dev/null 2>"$work/$c.err" || { cat "$work/$c.err" >&2; exit 1; }
    grep -oE 'phases: .*' "$work/$c.err" >>"$work/$c.phases"
  done
done
base=$(median <"$work/none.t")
for c in "${codecs[@]}"; do
  size=$(stat -c %s "$(sed -nE 's/.*-initrd ([^ ]+) .*/\1/p' "$work/$c.warm" | head -n1)")
  m=$(median <"$work/$c.t")
  printf '%-5s %4d MB  median %6.2f s  ratio %.3f  (qemu start %s ms, boot to init %s ms)\n' \
    "$c" $((size >> 20)) "$m" "$(ratio "$m" "$base")" "$(phase_ms 'qemu start' "$work/$c.phases")" \
    "$(phase_ms 'boot to init' "$work/$c.phases")"
done
