#!/usr/bin/env bash
# VM tests of `ktstr shell`: each case boots the kernel the set-up fetched and
# checks what comes back. Usage: shell_cases.sh CASE (KTSTR = the ktstr binary).
set -uo pipefail
ktstr=${KTSTR:?set KTSTR to the ktstr binary}
case_name=${1:?usage: shell_cases.sh CASE}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
# run CMD...: runs ktstr with stdout/stderr captured to $work/out and $work/err.
run() { "$ktstr" "$@" >"$work/out" 2>"$work/err"; rc=$?; }
expect_rc() { [ "$rc" = "$1" ] || { cat "$work/err" >&2; fail "exit code $rc, expected $1"; }; }
expect_out() { grep -qE -- "$1" "$work/out" || { cat "$work/out" "$work/err" >&2; fail "stdout lacks /$1/"; }; }
expect_err() { grep -qE -- "$1" "$work/err" || { cat "$work/err" >&2; fail "stderr lacks /$1/"; }; }

case $case_name in
  fio_version)
    run shell -i fio --exec "fio --version"
    expect_rc 0; expect_out '^fio-[0-9]' ;;
  exit_codes)
    for code in 0 1 42; do
      run shell --exec "exit $code"; expect_rc "$code"
    done ;;
  stdout_stderr_separate)
    run shell --exec 'echo to-out; echo to-err >&2; printf "a b\tc"'
    expect_rc 0
    [ "$(cat "$work/out")" = "$(printf 'to-out\na b\tc')" ] || fail "stdout not byte-exact: $(od -c "$work/out")"
    grep -qx 'to-err' "$work/err" || fail "stderr lacks to-err" ;;
  killed_by_signal)
    run shell --exec 'kill -TERM $$'
    expect_rc 143; expect_err 'killed by signal 15' ;;
  timeout)
    start=$(date +%s)
    run shell --timeout 3 --exec 'sleep 1000'
    expect_rc 124; expect_err 'timed out'
    [ $(( $(date +%s) - start )) -lt 100 ] || fail "timeout took too long" ;;
  background_holds_stdout)
    # A background child keeps stdout open after the command exits.
    run shell --timeout 60 --exec '(sleep 1000 &); echo parent-done'
    expect_rc 0; expect_out '^parent-done$' ;;
  orphan_reported)
    # The setsid'd shell exits at once: its sleep is an orphan of init, in a session of its own,
    # beyond the command's process group. Init kills it and the host names it.
    run shell --timeout 60 --exec \
      "setsid sh -c 'sleep 1000 & echo \$! > /tmp/orphan'; while [ ! -s /tmp/orphan ]; do sleep 0.1; done; cat /tmp/orphan"
    expect_rc 0
    orphan=$(cat "$work/out")
    [ -n "$orphan" ] || fail "the command did not print the orphan's pid"
    expect_err "1 process was still running when the command ended and had to be killed: $orphan \\(sleep\\)" ;;
  panic)
    run shell --exec 'echo c > /proc/sysrq-trigger; sleep 100'
    expect_rc 125; expect_err 'kernel panic'; expect_err 'sysrq' ;;
  missing_include)
    start=$(date +%s%N)
    run shell -i "$work/no such file" --exec true
    expect_rc 125; expect_err "no such file"
    # Fails before any boot: well under the time a boot takes.
    [ $(( ($(date +%s%N) - start) / 1000000 )) -lt 2000 ] || fail "missing include took a boot" ;;
  include_dir_on_path)
    mkdir -p "$work/tools dir/bin"
    printf '#!/bin/sh\necho "tool ran with $1"\n' >"$work/tools dir/bin/my tool"
    chmod +x "$work/tools dir/bin/my tool"
    run shell -i "$work/tools dir" --exec '"my tool" arg1'
    expect_rc 0; expect_out '^tool ran with arg1$' ;;
  interactive)
    # No --exec: a shell on the console; its exit status comes back.
    printf 'echo marker-$((6*7))\nexit 7\n' | "$ktstr" shell >"$work/out" 2>"$work/err"; rc=$?
    expect_rc 7; expect_out 'marker-42' ;;
  qemu_refuses)
    # QEMU itself fails: its own words come back, not an internal error.
    run shell --cpus 9999 --exec true
    expect_rc 125; expect_err 'qemu exited'; expect_err 'Invalid SMP CPUs' ;;
  interrupted_cleans_up)
    # SIGINT while the VM runs: exit 130, QEMU gone, no temp dir left.
    mkdir "$work/tmp"
    TMPDIR="$work/tmp" "$ktstr" shell --exec 'sleep 1000' >"$work/out" 2>"$work/err" &
    pid=$!
    sleep 8; kill -INT "$pid"; wait "$pid"; rc=$?
    expect_rc 130
    [ -z "$(ls -A "$work/tmp")" ] || fail "left behind: $(ls -A "$work/tmp")"
    ! pgrep -f "$work/tmp" >/dev/null || fail "qemu still runs" ;;
  origin_runpath)
    # A program built here (under /tmp) finds its library through RUNPATH $ORIGIN/../lib.
    mkdir -p "$work/proj/lib" "$work/proj/bin"
    printf 'int answer(void) { return 42; }\n' >"$work/proj/answer.c"
    printf '#include <stdio.h>\nint answer(void);\nint main(void) { printf("answer %%d\\n", answer()); return 0; }\n' >"$work/proj/prog.c"
    cc -shared -fPIC -o "$work/proj/lib/libanswer.so" "$work/proj/answer.c" || fail "cc lib"
    cc -o "$work/proj/bin/prog" "$work/proj/prog.c" -L"$work/proj/lib" -lanswer \
       -Wl,--enable-new-dtags,-rpath,'$ORIGIN/../lib' || fail "cc prog"
    run shell -i "$work/proj/bin/prog" --exec prog
    expect_rc 0; expect_out '^answer 42$' ;;
  phases)
    # -v splits the run into phases; each is there, the payload's 2 s land in "payload",
    # and they add up to the process's wall time less its own start-up.
    start=$(date +%s%N)
    run shell -v --exec 'sleep 2'
    wall=$(( ($(date +%s%N) - start) / 1000000 ))
    expect_rc 0
    line=$(grep -oE 'phases: .*' "$work/err") || fail "no phases line: $(cat "$work/err")"
    ms() { sed -nE "s/.*$1 ([0-9]+) ms.*/\1/p" <<<"$line"; }
    for phase in pack "qemu start" "boot to init" "init to payload" payload shutdown total; do
      [ -n "$(ms "$phase")" ] || fail "no '$phase' in: $line"
    done
    [ "$(ms "boot to init")" -gt 0 ] || fail "no kernel boot time: $line"
    [ "$(ms payload)" -ge 1900 ] && [ "$(ms payload)" -le 6000 ] || fail "payload not ~2 s: $line"
    total=$(ms total)
    [ "$total" -le "$wall" ] && [ "$total" -ge $(( wall - 1500 )) ] \
      || fail "phases add to $total ms, the run took $wall ms: $line"
    # KTSTR_LOG=debug shows them too, with the kernel's console kept quiet.
    KTSTR_LOG=debug "$ktstr" shell --exec true >"$work/out" 2>"$work/err" || fail "exit code $?"
    expect_err 'phases: pack [0-9]+ ms'; expect_err 'running qemu.* quiet loglevel=1' ;;
  compressed_boot)
    # Each codec the kernel unpacks boots, cached beside the plain archive; a bad word fails
    # before any boot, naming the flag.
    for codec in gzip lz4 zstd; do
      run shell -i fio --compress "$codec" --exec 'fio --version'
      expect_rc 0; expect_out '^fio-[0-9]'
    done
    run shell --compress xz --exec true
    expect_rc 125; expect_err "--compress wants none, gzip, lz4 or zstd, not 'xz'" ;;
  *) fail "unknown case $case_name" ;;
esac
echo "PASS: $case_name"
