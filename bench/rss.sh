#!/usr/bin/env bash
# The runner's own peak RSS (VmHWM of the ktstr process, or the suite process, read from
# /proc while it runs) beside QEMU's, for the first run per kernel (which unpacks its PVH
# ELF), `ktstr shell -i fio` and a two-VM suite run.
# Target: the runner under 50 MB. Usage: bench/rss.sh   (SUITE as for bench/parallel.sh)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
suite=${SUITE:-$here/build/bench/parallel_suite}

hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || true; }

# peak NAME CMD...: runs CMD, sampling its VmHWM and its QEMU children's until it exits.
peak() {
  local name=$1 ours=0 qemu=0 pid v; shift
  "$@" >/dev/null 2>"$work/err" & pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    v=$(hwm_kb "$pid"); [ -n "$v" ] && [ "$v" -gt "$ours" ] && ours=$v
    for q in $(pgrep -P "$pid" qemu-system 2>/dev/null || true); do
      v=$(hwm_kb "$q"); [ -n "$v" ] && [ "$v" -gt "$qemu" ] && qemu=$v
    done
    sleep 0.05
  done
  wait "$pid" || { cat "$work/err" >&2; echo "$name failed" >&2; exit 1; }
  printf '%-44s runner peak %5.1f MB (target < 50), one QEMU peak %6.1f MB\n' "$name" \
    "$(echo "$ours / 1024" | bc -l)" "$(echo "$qemu / 1024" | bc -l)"
}

# The first run per kernel unpacks its PVH ELF into the cache: a private, empty cache dir.
kernel=$("$ktstr" kernel list | awk '/chosen/ {print $1; exit}')
peak "ktstr shell --exec true (first run per kernel)" env KTSTR_CACHE_DIR="$work/cold" \
  "$ktstr" shell --kernel "$kernel" --exec true
peak "ktstr shell -i fio (first pack, no cache)" "$ktstr" shell --no-cache -i fio --exec 'fio --version'
peak "ktstr shell -i fio (cached)" "$ktstr" shell -i fio --exec 'fio --version'
peak "ktstr shell -i fio --compress zstd" "$ktstr" shell --no-cache --compress zstd -i fio --exec 'fio --version'
peak "parallel_suite -j 2 (two VMs at once)" "$suite" -j 2 --filter 'one_vcpu_[01]'
