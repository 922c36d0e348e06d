#!/usr/bin/env bash
# Runs payload_escape_suite, whose only test must fail: its payload leaves an orphan that
# outlives the body, which the harness must kill, wait for, and name (the pid the body saw).
# Usage: escape_check.sh SUITE
set -uo pipefail
suite=${1:?usage: escape_check.sh SUITE}
out=$("$suite" -j 1 2>&1); rc=$?
printf '%s\n' "$out"

fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$rc" = 1 ] || fail "exit code $rc, expected 1 (the test must fail)"
grep -qE '^FAIL +orphan_outliving_the_body_is_killed_and_named \[eevdf\]' <<<"$out" ||
  fail "no FAIL line for the test"
orphan=$(sed -nE 's/^orphan sleep ([0-9]+) outlived its payload: yes$/\1/p' <<<"$out")
[ -n "$orphan" ] || fail "the body did not see its orphan outlive the payload"
grep -qF "1 process outlived the test body and had to be killed: $orphan (sleep)" <<<"$out" ||
  fail "the failure does not name the orphan sleep $orphan"
! grep -qE 'still not reaped|the test body did not return' <<<"$out" ||
  fail "the orphan was not reaped, or the body failed on its own"
messages=$(grep -cE '^  ' <<<"$(sed -n '/^--- FAIL/,/^--- guest/p' <<<"$out")")
[ "$messages" = 2 ] || fail "expected 2 indented lines (topology, the orphan), got $messages"
echo "escape_check: orphan $orphan killed and named"
