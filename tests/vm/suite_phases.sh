#!/usr/bin/env bash
# A suite run with -v prints each test's phases and its report with the whole console, and
# its JUnit XML carries the phases as properties: all there, none negative, the payload's
# second inside "payload", and the phases adding up to the run's wall time.
# Usage: suite_phases.sh SUITE
set -uo pipefail
suite=${1:?usage: suite_phases.sh SUITE}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$suite" --exact one_vcpu_0 -v --junit "$work/junit.xml" 2>"$work/err"
rc=$?
[ "$rc" = 0 ] || { cat "$work/err" >&2; fail "suite exit code $rc"; }
grep -qE 'one_vcpu_0: phases: pack [0-9]+ ms, qemu start [0-9]+ ms, boot to init [0-9]+ ms, init to payload [0-9]+ ms, payload [0-9]+ ms, shutdown [0-9]+ ms \(total [0-9]+ ms\)' "$work/err" \
  || { cat "$work/err" >&2; fail "no phases line on -v"; }
# -v also prints a passing test's report with the whole kernel log, from its first line.
grep -q '^--- PASS one_vcpu_0' "$work/err" || { cat "$work/err" >&2; fail "no report of the pass on -v"; }
sed -n '/^--- guest console$/,$p' "$work/err" | grep -q 'Linux version' \
  || fail "the report on -v lacks the whole console (no 'Linux version' line after '--- guest console')"
python3 - "$work/junit.xml" <<'PY' || fail "JUnit phases implausible"
import sys, xml.etree.ElementTree as E
case = E.parse(sys.argv[1]).getroot().find('testsuite').find('testcase')
props = {p.get('name'): p.get('value') for p in case.find('properties')}
names = ['ms_pack', 'ms_qemu_start', 'ms_boot_to_init', 'ms_init_to_payload', 'ms_payload',
         'ms_shutdown']
ms = {n: float(props[n]) for n in names}
print(ms, 'total', props['ms_total'], 'time', case.get('time'))
assert all(v >= 0 for v in ms.values()), 'a negative phase'
assert ms['ms_boot_to_init'] > 0, 'no kernel boot'
assert ms['ms_qemu_start'] > 0, 'no time before the guest clock'
assert 900 <= ms['ms_payload'] <= 30000, 'the body spins for 1 s'
wall = float(case.get('time')) * 1000
total = sum(ms.values())
assert abs(total - wall) <= 0.05 * wall + 500, f'phases add to {total}, wall {wall}'
PY
echo "PASS: suite phases"
