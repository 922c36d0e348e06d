#!/usr/bin/env bash
# Configures the project with clang hidden (a cached path that does not exist): the configure
# must succeed, say why the fixture and the tests that need it are left out, and register the
# scheduler tests that need no BPF.   usage: no_bpf_tools.sh SOURCE_DIR
set -uo pipefail
src=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { printf 'no_bpf_tools: FAIL: %s\n' "$*" >&2; exit 1; }

out=$(cmake -S "$src" -B "$work" -G Ninja -DKTSTR_BPF_CLANG=/nonexistent/clang-19 2>&1)
rc=$?
printf '%s\n' "$out" | grep -E 'scx_fixture|left out|Error|error' || true
[ "$rc" = 0 ] || { printf '%s\n' "$out"; fail "the configure failed ($rc)"; }
grep -q "scx_fixture: skipped: BPF tools missing: clang (run scripts/setup.sh, or install clang-19, llvm-19, bpftool and libbpf-dev)" <<<"$out" ||
  fail "no message naming the missing clang"
grep -Eq "scheduler tests left out \(no fixture scheduler: BPF tools missing: clang .*\):.* stall_is_caught" <<<"$out" ||
  fail "no message listing the scheduler tests left out"

tests=$(cd "$work" && ctest -N 2>&1)
grep -q "scheduler_faults_suite: eevdf_baseline" <<<"$tests" ||
  fail "the scheduler tests that need no BPF are not registered"
grep -q "stall_is_caught" <<<"$tests" && fail "a test that needs the fixture is registered"
echo "no_bpf_tools: PASS"
