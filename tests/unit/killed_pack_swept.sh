#!/usr/bin/env bash
# The real CLI: `ktstr shell` killed with SIGKILL while it packs a 300 MB include file into the
# initramfs cache leaves its temp file there; the next run, a miss and then a hit, removes it at
# once and boots. A private cache; the kernel is read from the shared one.
# Usage: killed_pack_swept.sh KTSTR
set -uo pipefail
ktstr=${1:?usage: killed_pack_swept.sh KTSTR}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
export TMPDIR=$work/tmp KTSTR_CACHE_DIR=$work/cache
export KTSTR_KERNEL=${KTSTR_KERNEL:-$HOME/.cache/ktstr/kernels/default/vmlinuz}
mkdir "$TMPDIR"
head -c 300M /dev/urandom >"$work/big"

fail() { echo "FAIL: $*" >&2; exit 1; }

# Starts `ktstr shell -i big`, kills it with SIGKILL once its temp file holds 50 MB; sets $part.
killed_pack() {
  "$ktstr" shell -i "$work/big" --exec true >"$work/out" 2>"$work/err" &
  local pid=$! i
  part=
  for i in $(seq 6000); do
    part=$(ls -d "$KTSTR_CACHE_DIR"/initramfs/.*.part 2>/dev/null | head -n1)
    [ -n "$part" ] && [ "$(stat -c %s "$part" 2>/dev/null || echo 0)" -gt $((50 << 20)) ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/err" >&2; fail "ktstr shell ended before it was killed"; }
    sleep 0.01
  done
  kill -KILL "$pid"; wait "$pid" 2>/dev/null
  [ -e "$part" ] || fail "no temp file left by the killed run: $(ls -A "$KTSTR_CACHE_DIR/initramfs")"
  echo "killed ktstr $pid mid-pack; it left $(basename "$part"), $(($(stat -c %s "$part") >> 20)) MB"
}

# A run that boots with a small include: its lookup removes $part at once.
next_run() {
  KTSTR_LOG=debug "$ktstr" shell -i true --exec 'echo booted' >"$work/out" 2>"$work/err" \
    || fail "the next run failed: $(tail -5 "$work/err")"
  grep -qx booted "$work/out" || fail "the next run printed: $(cat "$work/out")"
  grep -F "removed $part, left by a writer that has ended" "$work/err" \
    || fail "no debug line naming $part: $(grep -v '^\[' "$work/err" | tail -5)"
  grep -F "initramfs $KTSTR_CACHE_DIR/initramfs/" "$work/err"
  [ ! -e "$part" ] || fail "$part is still there"
  local left
  left=$(ls -A "$KTSTR_CACHE_DIR/initramfs" | grep '^\.')
  [ -z "$left" ] || fail "temp files left: $left"
}

killed_pack
next_run  # a miss: the small include's archive is written
killed_pack
next_run  # a hit
echo "PASS"
