#!/usr/bin/env bash
# The real CLI, no boot needed: `ktstr shell` killed with SIGKILL as soon as its QEMU runs
# leaves its temp dir; its QEMU dies with it; the next run (`ktstr initramfs`, then
# `ktstr cache clean`) removes the directory and says so. Usage: killed_run_swept.sh KTSTR
set -uo pipefail
ktstr=${1:?usage: killed_run_swept.sh KTSTR}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
export TMPDIR=$work/tmp
mkdir "$TMPDIR" "$work/cache"

fail() { echo "FAIL: $*" >&2; exit 1; }

# Starts `ktstr shell`, waits for its QEMU, kills ktstr with SIGKILL; sets $dir to its temp dir.
killed_shell() {
  "$ktstr" shell --exec 'sleep 30' >"$work/out" 2>"$work/err" &
  local pid=$! i
  dir=
  for i in $(seq 600); do
    dir=$(ls -d "$TMPDIR"/ktstr-vm.* 2>/dev/null | head -n1)
    [ -n "$dir" ] && pgrep -f -- "$dir/" >/dev/null && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/err" >&2; fail "ktstr shell ended before QEMU ran"; }
    sleep 0.1
  done
  [ -n "$dir" ] || fail "no QEMU started in 60 s: $(cat "$work/err")"
  kill -KILL "$pid"; wait "$pid" 2>/dev/null
  # QEMU dies with its parent (PR_SET_PDEATHSIG).
  for i in $(seq 50); do pgrep -f -- "$dir/" >/dev/null || break; sleep 0.1; done
  if qemu=$(pgrep -f -- "$dir/"); then
    kill -KILL $qemu
    fail "QEMU $qemu outlived its killed ktstr"
  fi
  [ -e "$dir/.ktstr-lock" ] || fail "the killed run left no directory with its lock: $(ls -A "$TMPDIR")"
  echo "killed ktstr $pid; left $(ls -A "$dir" | tr '\n' ' ')"
}

killed_shell
KTSTR_LOG=debug "$ktstr" initramfs --list -i true >/dev/null 2>"$work/err" \
  || fail "ktstr initramfs: $(cat "$work/err")"
grep -F "removed $dir, left by a ktstr run that has ended" "$work/err" \
  || fail "no debug line naming $dir: $(cat "$work/err")"
[ ! -e "$dir" ] || fail "$dir is still there"
grep -E 'swept .* in [0-9.]+ ms' "$work/err"

killed_shell
KTSTR_CACHE_DIR=$work/cache "$ktstr" cache clean >"$work/out" 2>"$work/err" \
  || fail "ktstr cache clean: $(cat "$work/err")"
grep -Fx "removed 1 temp dir left by ended runs from $TMPDIR" "$work/out" \
  || fail "cache clean said: $(cat "$work/out" "$work/err")"
[ ! -e "$dir" ] || fail "$dir is still there"
[ -z "$(ls -A "$TMPDIR")" ] || fail "left in TMPDIR: $(ls -A "$TMPDIR")"
echo "PASS"
