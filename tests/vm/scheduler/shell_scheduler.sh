#!/usr/bin/env bash
# ktstr shell --scheduler in a real VM: a case name, then how the run must end.
#   usage: shell_scheduler.sh CASE   (env: KTSTR = the ktstr binary, FIXTURE = scx_fixture)
set -uo pipefail
: "${KTSTR:?set KTSTR to the ktstr binary}" "${FIXTURE:?set FIXTURE to scx_fixture}"
scx_bin=${KTSTR_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ktstr}/scx/bin
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { printf 'shell_scheduler: FAIL: %s\n' "$*" >&2; exit 1; }

# run ARGS...: ktstr shell ARGS, its stdout in $out, stderr in $err, exit code in $rc.
run() {
  "$KTSTR" shell "$@" >"$work/out" 2>"$work/err"
  rc=$?
  out=$(cat "$work/out")
  err=$(cat "$work/err")
  printf -- '--- exit %s\n--- stdout\n%s\n--- stderr\n%s\n' "$rc" "$out" "$err"
}
expect_rc() { [ "$rc" = "$1" ] || fail "exit code $rc, expected $1"; }
expect_out() { grep -Eq -- "$1" <<<"$out" || fail "stdout does not match: $1"; }
expect_err() { grep -Eq -- "$1" <<<"$err" || fail "stderr does not match: $1"; }

# What the command sees of sched_ext while it runs under the scheduler.
show_ops='echo "state=$(cat /sys/kernel/sched_ext/state) ops=$(cat /sys/kernel/sched_ext/root/ops)"'

case $1 in
fixture_runs_stress)
  run --scheduler "$FIXTURE" --scheduler-arg --timeout-ms --scheduler-arg 5000 -i stress-ng \
      --exec "$show_ops; stress-ng --cpu 2 --fork 2 --timeout 3s >/dev/null 2>&1; echo stress=\$?"
  expect_rc 0
  expect_out '^state=enabled ops=ktstr_fixture$'
  expect_out '^stress=0$'
  ;;
scx_simple_keeps_exit_code)
  [ -x "$scx_bin/scx_simple" ] || { echo "no $scx_bin/scx_simple (scripts/setup.sh builds it)"; exit 77; }
  run --scheduler "$scx_bin/scx_simple" --exec "$show_ops; exit 7"
  expect_rc 7
  expect_out '^state=enabled ops=simple'
  grep -q "error" <<<"$err" && fail "a clean run reported an error"
  ;;
ejection_is_reported)
  run --scheduler "$FIXTURE" --scheduler-arg --fault --scheduler-arg error-after-attach \
      --exec "sleep 60; echo the command outlived its scheduler"
  expect_rc 123
  expect_err "scheduler 'ktstr_fixture' was ejected by the kernel [^:]+: scx_bpf_error: injected error after attach"
  grep -q outlived <<<"$out" && fail "the command was not stopped when the scheduler was ejected"
  ;;
ignored_stop_is_reported)
  run --scheduler "$FIXTURE" --scheduler-arg --fault --scheduler-arg ignore-stop --exec "true"
  expect_rc 123
  expect_err "scheduler 'ktstr_fixture' ignored SIGTERM at stop: still running 5 s later, so it was killed with SIGKILL"
  expect_err "the command exited with code 0 \\(ktstr exits 123: the scheduler failed\\)"
  ;;
bad_input_boots_nothing)
  run --scheduler "$work/no-such-scheduler" --exec true
  expect_rc 125
  expect_err "cannot find scheduler '$work/no-such-scheduler' \\(from --scheduler\\)"
  run --scheduler "$FIXTURE"
  expect_rc 125
  expect_err "option --scheduler needs --exec"
  run --scheduler-arg -v --exec true
  expect_rc 125
  expect_err "option --scheduler-arg needs --scheduler"
  ;;
*)
  fail "unknown case $1"
  ;;
esac
echo "shell_scheduler: $1: PASS"
