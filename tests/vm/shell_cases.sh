#!/usr/bin/env bash
# VM tests of `ktstr shell`: each case boots the kernel the set-up fetched and
# checks what comes back. Usage: shell_cases.sh CASE (KTSTR = the ktstr binary).
set -uo pipefail
ktstr=${KTSTR:?set KTSTR to the ktstr binary}
case_name=${1:?usage: shell_cases.sh CASE}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
here=$(cd "$(dirname "$0")" && pwd)

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
    done
    # 124 and 125 are also ktstr's own (timeout, VM failure): the command's own says so.
    run shell --exec "exit 125"; expect_rc 125
    expect_err "the command itself exited 125 \(no timeout, no VM failure\)"
    ! grep -q "error" "$work/err" || fail "an error line for the command's own 125" ;;
  scheduler_needs_sched_ext)
    # A kernel whose config says it has no sched_ext is refused before it boots (exit 123).
    old=$(ls -d "${KTSTR_CACHE_DIR:-$HOME/.cache/ktstr}"/kernels/6.1.*/ 2>/dev/null | head -1)
    [ -n "$old" ] || { echo "no 6.1 kernel in the cache (scripts/setup.sh fetches it); skipped"; exit 77; }
    start=$(date +%s%N)
    run shell --kernel "$old/vmlinuz" --scheduler scx_simple --exec true
    expect_rc 123; expect_err "has no sched_ext .*--scheduler scx_simple cannot run on it"
    [ $(( ($(date +%s%N) - start) / 1000000 )) -lt 3000 ] || fail "the refusal took a boot" ;;
  job_delivery)
    # A job that fits rides on the kernel command line and leaves no trace in the command's
    # environment; one too long for it (over 2 KB) comes on the control port after the hello.
    KTSTR_LOG=debug run shell --exec 'echo "job=${KTSTR_JOB:-unset}"'
    expect_rc 0; expect_out '^job=unset$'
    expect_err 'job \([0-9]+ bytes as KTSTR_JOB\) on the kernel command line'
    filler=$(head -c 3000 /dev/zero | tr '\0' x)
    KTSTR_LOG=debug run shell --exec ": $filler; echo long-job-ran \"\${#PATH}\""
    expect_rc 0; expect_out '^long-job-ran [0-9]+$'
    expect_err 'too long for the kernel command line: sent after the hello' ;;
  stdout_stderr_separate)
    run shell --exec 'echo to-out; echo to-err >&2; printf "a b\tc"'
    expect_rc 0
    [ "$(cat "$work/out")" = "$(printf 'to-out\na b\tc')" ] || fail "stdout not byte-exact: $(od -c "$work/out")"
    grep -qx 'to-err' "$work/err" || fail "stderr lacks to-err" ;;
  binary_output)
    # Every byte value, on both streams at once: the ports pass bytes as they are (no CR/LF
    # rewriting, no flow-control or interrupt characters eaten), and all of it arrives before
    # ktstr exits.
    python3 -c 'import sys; sys.stdout.buffer.write(bytes(range(256)) * 2048)' >"$work/bytes"
    start=$(date +%s%N)
    run shell -i "$work/bytes" --exec 'cat /include-files/bytes & cat /include-files/bytes >&2; wait'
    expect_rc 0
    cmp "$work/bytes" "$work/out" || fail "stdout differs from the 512 KiB sent"
    # ktstr's own lines (the accelerator it chose) come first on stderr.
    tail -c 524288 "$work/err" | cmp "$work/bytes" - || fail "stderr differs from the 512 KiB sent"
    ! head -c -524288 "$work/err" | grep -av '^ktstr: ' || fail "stderr has more than ktstr's lines before the bytes"
    echo "512 KiB on each stream: the run took $(( ($(date +%s%N) - start) / 1000000 )) ms" ;;
  output_not_a_terminal)
    # The command's stdout and stderr are pipes, as on a host under a harness: programs that
    # colour or animate a terminal stay plain.
    run shell --exec '[ -t 1 ] && echo "stdout is a terminal"; [ -t 2 ] && echo "stderr is a terminal"; [ -p /proc/self/fd/1 ] && [ -p /proc/self/fd/2 ] && echo pipes'
    expect_rc 0
    [ "$(cat "$work/out")" = pipes ] || fail "expected pipes, got: $(cat "$work/out")" ;;
  flood_output)
    # Commands that never stop writing: the timeout still ends one (exit 124), and a writer
    # left in the background does not keep a finished command from ending.
    start=$(date +%s)
    run shell --timeout 5 --exec 'yes'
    expect_rc 124; expect_err 'timed out'
    [ $(( $(date +%s) - start )) -lt 60 ] || fail "the timeout took $(( $(date +%s) - start )) s"
    start=$(date +%s)
    run shell --exec 'yes & sleep 1; echo leader-done'
    expect_rc 0; expect_out 'leader-done'
    [ $(( $(date +%s) - start )) -lt 60 ] || fail "the run took $(( $(date +%s) - start )) s" ;;
  nonblocking_outputs)
    # ktstr's stdout and stderr are non-blocking pipes (the flag belongs to the open pipe, so a
    # caller's event loop may have set it) read only after a wait: every byte still arrives.
    python3 - "$ktstr" <<'PY' || fail "output lost on non-blocking pipes"
import fcntl, os, select, subprocess, sys, time
ktstr = sys.argv[1]
out_r, out_w = os.pipe()
err_r, err_w = os.pipe()
for fd in (out_w, err_w):
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
p = subprocess.Popen([ktstr, "shell", "--exec", "seq 1 30000; seq 1 20000 >&2"],
                     stdout=out_w, stderr=err_w)
os.close(out_w)
os.close(err_w)
time.sleep(20)  # the guest fills both pipes meanwhile
got, open_fds = {out_r: b"", err_r: b""}, [out_r, err_r]
while open_fds:
    ready, _, _ = select.select(open_fds, [], [], 120)
    if not ready:
        sys.exit("no end of output within 120 s")
    for fd in ready:
        chunk = os.read(fd, 65536)
        if chunk:
            got[fd] += chunk
        else:
            open_fds.remove(fd)
rc = p.wait(timeout=60)
want_out = "".join(f"{i}\n" for i in range(1, 30001)).encode()
want_err = "".join(f"{i}\n" for i in range(1, 20001)).encode()
if rc != 0:
    sys.exit(f"exit code {rc}; stderr ends {got[err_r][-300:]!r}")
if got[out_r] != want_out:
    sys.exit(f"stdout: {len(got[out_r])} bytes, expected {len(want_out)}")
if not got[err_r].endswith(want_err):  # after ktstr's own line
    sys.exit(f"stderr: {len(got[err_r])} bytes, the last {len(want_err)} expected; "
             f"it ends {got[err_r][-200:]!r}")
PY
    ;;
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
    # No --exec, input from a pipe: read as a script from its first byte on (nothing is lost
    # to a console nobody reads yet); only the commands' output reaches stdout.
    printf 'echo first-$((2*3))\necho marker-$((6*7))\nexit 7\n' | "$ktstr" shell >"$work/out" 2>"$work/err"; rc=$?
    expect_rc 7
    [ "$(cat "$work/out")" = "$(printf 'first-6\nmarker-42')" ] || fail "stdout: $(od -c "$work/out" | head)" ;;
  interactive_eof)
    # The end of the input ends the shell, with the last command's status.
    printf 'echo eof-$((5+5))\n(exit 5)\n' | "$ktstr" shell >"$work/out" 2>"$work/err"; rc=$?
    expect_rc 5; expect_out '^eof-10$'
    # A last line without a newline still runs.
    printf 'echo no-newline; false' | "$ktstr" shell >"$work/out" 2>"$work/err"; rc=$?
    expect_rc 1; expect_out '^no-newline$'
    # Closed stdin is empty input.
    "$ktstr" shell <&- >"$work/out" 2>"$work/err"; rc=$?
    expect_rc 0 ;;
  script_end_is_final)
    # A command that reads the script's input to its end takes the one ^D; the input's end
    # stays for every later read (as a pipe's does), so the shell ends promptly with its status.
    start=$(date +%s)
    printf 'echo start\ncat >/dev/null\necho never\n' | "$ktstr" shell --timeout 200 >"$work/out" 2>"$work/err"; rc=$?
    secs=$(( $(date +%s) - start ))
    expect_rc 0; expect_out '^start$'
    [ "$secs" -lt 150 ] || fail "the run took $secs s"
    echo "cat reading the script to its end: the run took $secs s"
    # Read on one line, so the shell has it before the reads: each of them sees the end.
    printf 'echo first\ncat; read x || echo read-sees-end; cat; echo cat-again-$?; (exit 6)\n' \
      | "$ktstr" shell --timeout 200 >"$work/out" 2>"$work/err"; rc=$?
    expect_rc 6
    [ "$(cat "$work/out")" = "$(printf 'first\nread-sees-end\ncat-again-0')" ] || fail "stdout: $(cat "$work/out")"
    # A regular file and /dev/null as the script end the same way.
    printf 'echo from-file\ncat; (exit 3)\n' >"$work/script.sh"
    "$ktstr" shell --timeout 200 <"$work/script.sh" >"$work/out" 2>"$work/err"; rc=$?
    expect_rc 3; expect_out '^from-file$'
    start=$(date +%s)
    "$ktstr" shell --timeout 200 </dev/null >"$work/out" 2>"$work/err"; rc=$?
    expect_rc 0
    [ $(( $(date +%s) - start )) -lt 150 ] || fail "/dev/null took $(( $(date +%s) - start )) s" ;;
  script_timeout)
    # --timeout applies to a script as to --exec: 124 and the same message.
    start=$(date +%s)
    printf 'echo started\nsleep 1000\n' | "$ktstr" shell --timeout 5 >"$work/out" 2>"$work/err"; rc=$?
    expect_rc 124; expect_out '^started$'; expect_err 'command timed out after 5 s and was killed'
    [ $(( $(date +%s) - start )) -lt 100 ] || fail "the timeout took $(( $(date +%s) - start )) s"
    # On a terminal only when given: the shell is killed 124 while a command runs, and the
    # terminal's settings come back.
    PYTHONPATH=$here python3 - "$ktstr" <<'PY' || fail "terminal --timeout"
import os, sys
from ktstr_pty import expect_end, read_until, start_on_pty
master, slave, before, pid = start_on_pty(sys.argv[1], args=["--timeout", "20"])
read_until(master, "# ")
os.write(master, b"sleep 1000\r")
expect_end(pid, master, slave, before, 124, "--timeout 20 on a terminal")
PY
    ;;
  script_long_lines)
    # Lines longer than the guest terminal's 4095 bytes reach the shell whole, at the edges
    # and far past them, the last without a newline.
    python3 - "$work" <<'PY'
import sys
work = sys.argv[1]
digits = "0123456789" * 10001
script, want = "", ""
for size in (4090, 4094, 4095, 4096, 4097, 8189, 8190, 8191, 100000):
    text = f"{size}:" + digits[: size - 6 - len(str(size))]
    script += f"echo {text}\n"  # the line is `size` bytes with its newline
    want += text + "\n"
text = "last:" + digits[:9000]
script += f"echo {text}"
want += text + "\n"
open(f"{work}/script", "w").write(script)
open(f"{work}/want", "w").write(want)
PY
    "$ktstr" shell <"$work/script" >"$work/out" 2>"$work/err"; rc=$?
    expect_rc 0
    cmp "$work/want" "$work/out" || fail "lines differ: $(cut -c1-40 "$work/out")" ;;
  verbose_whole_lines)
    # Under -v the console and the command's stderr share ktstr's stderr: an unfinished stderr
    # line is not cut by a console line written meanwhile, and a finished one shows at once.
    "$ktstr" shell -v --exec 'printf abc >&2; sleep 1; echo console-marker >/dev/console; sleep 1; printf "def\n" >&2; echo early-line >&2; sleep 10' \
      >"$work/out" 2>"$work/err" &
    pid=$!
    for _ in $(seq 480); do grep -q '^early-line$' "$work/err" && break; sleep 0.5; done
    grep -q '^early-line$' "$work/err" || { kill "$pid"; fail "no early-line on stderr"; }
    kill -0 "$pid" 2>/dev/null || fail "a finished stderr line came only after the run"
    wait "$pid"; rc=$?; expect_rc 0
    grep -q '^abcdef$' "$work/err" || { cat "$work/err" >&2; fail "no whole line abcdef on stderr"; }
    grep -qE '^console-marker'$'\r''?$' "$work/err" || { cat "$work/err" >&2; fail "the console line was cut"; } ;;
  interactive_terminal)
    # On a terminal: a prompt, typed lines, Ctrl-C reaches the guest's command, and the
    # terminal's settings come back after `exit` and after SIGINT to ktstr. The sleeping
    # command prints once it runs in the foreground, so the ^C cannot reach the shell
    # before the command exists; every reply after the first prompt has 30 s.
    PYTHONPATH=$here python3 - "$ktstr" <<'PY' || fail "terminal session failed"
import os, select, signal, sys, termios, time
from ktstr_pty import start_on_pty, wait_exit
ktstr = sys.argv[1]

def session(steps, interrupt=False, early=None):
    master, slave, before, pid = start_on_pty(ktstr)
    seen = b""
    everything = b""
    def wait_for(text, limit=240):
        nonlocal seen, everything
        end = time.time() + limit
        while text.encode() not in seen:
            left = end - time.time()
            if left <= 0 or not select.select([master], [], [], left)[0]:
                sys.exit(f"no {text!r} on the terminal; it showed: {seen[-600:]!r}")
            got = os.read(master, 65536)
            seen += got
            everything += got
        seen = seen[seen.index(text.encode()) + len(text):]
    if early:
        # Typed while ktstr packs and the guest boots: the host terminal does not echo it
        # (the guest does, once its console reads it), and it runs once the shell is up.
        time.sleep(1)
        os.write(master, early[0].encode())
        end = time.time() + 1
        while time.time() < end and select.select([master], [], [], end - time.time())[0]:
            everything += os.read(master, 65536)
        if early[0].strip().encode() in everything:
            sys.exit(f"the host terminal echoed early input: {everything!r}")
        seen = everything
        wait_for(early[1])
    wait_for("# ")
    for send, expect in steps:
        os.write(master, send.encode())
        wait_for(expect, 30)
    if interrupt:
        os.kill(pid, signal.SIGINT)
    status, _ = wait_exit(pid, master)
    after = termios.tcgetattr(slave)
    if before != after:
        sys.exit(f"terminal settings not restored: {before} -> {after}")
    return os.waitstatus_to_exitcode(status)

rc = session([("echo tty-$((3*4))\r", "tty-12"), ("sh -c 'echo running-$((6*7)); exec sleep 100'\r", "running-42"),
              ("\x03", "# "), ("echo after-$((1+1))\r", "after-2"), ("exit 4\r", "exit 4")])
if rc != 4:
    sys.exit(f"exit code {rc} after `exit 4`")
rc = session([("echo up\r", "up")], interrupt=True, early=("echo early-$((2+3))\r", "early-5"))
if rc != 130:
    sys.exit(f"exit code {rc} after SIGINT, expected 130")
PY
    ;;
  closed_outputs)
    # A closed or read-only stdout or stderr is refused before boot, not output lost in
    # ktstr's own sockets.
    start=$(date +%s%N)
    "$ktstr" shell --exec 'echo x' >&- 2>"$work/err"; rc=$?
    expect_rc 125; expect_err 'stdout is closed'
    "$ktstr" shell --exec 'echo x' >"$work/out" 2>&-; rc=$?
    expect_rc 125
    "$ktstr" shell --exec 'echo x' 1</dev/null 2>"$work/err"; rc=$?
    expect_rc 125; expect_err 'stdout is open read-only'
    [ $(( ($(date +%s%N) - start) / 1000000 )) -lt 3000 ] || fail "closed outputs took a boot" ;;
  bad_numbers)
    # Integers are integers, ranges are checked with the limit named, nothing boots.
    refused() { # stderr-regex args...
      local want=$1; shift
      run shell "$@" --exec true
      expect_rc 125; expect_err "$want"
    }
    refused "--timeout wants seconds from 0 to 604800.*'1e23'" --timeout 1e23
    refused "--timeout wants seconds.*'-1'" --timeout=-1
    refused "--timeout wants seconds.*'inf'" --timeout inf
    refused "--boot-timeout wants seconds.*'0x10'" --boot-timeout 0x10
    refused "--cpus wants a whole number of vCPUs from 1 to 255.*'1.5'" --cpus 1.5
    refused "--cpus wants a whole number of vCPUs from 1 to 255.*'100000'" --cpus 100000
    refused "--cpus.*'0'" --cpus 0
    refused "--memory wants a whole number of MB from 128 to [0-9]+ \(the host's RAM\).*'99999999'" --memory 99999999
    refused "--memory.*'512M'" --memory 512M
    refused "--memory.*'64'" --memory=64
    # An empty path (an unset variable) is an error, never "not given".
    refused "option --kernel needs a path, not an empty word" --kernel ""
    run kernel list --kernel=""
    expect_rc 125; expect_err "option --kernel needs a path, not an empty word"
    # `cache clean` takes no words: a typo or a guessed --dry-run empties nothing.
    mkdir -p "$work/cache/initramfs"; echo keep >"$work/cache/initramfs/x.cpio"
    KTSTR_CACHE_DIR="$work/cache" "$ktstr" cache clean --dry-run >"$work/out" 2>"$work/err"; rc=$?
    expect_rc 125; expect_err "unknown option '--dry-run' for .ktstr cache clean."
    [ -f "$work/cache/initramfs/x.cpio" ] || fail "cache clean --dry-run removed the cache" ;;
  option_equals)
    # --opt=value works for every long option, in both commands.
    run initramfs --include-files=fio --list
    expect_rc 0; expect_out '^/include-files/fio '
    run initramfs --include-files=fio --output="$work/fio.cpio"
    expect_rc 0; [ -s "$work/fio.cpio" ] || fail "--output=FILE wrote nothing"
    run initramfs --list=yes
    expect_rc 125; expect_err "--list takes no value"
    run shell --include-files=fio --timeout=60 --cpus=1 --memory=600 --cmdline=quiet --exec='fio --version'
    expect_rc 0; expect_out '^fio-[0-9]' ;;
  kernel_list)
    # KTSTR_KERNEL and --kernel are listed first and marked as the one `shell` boots.
    real=$("$ktstr" kernel list | awk 'NR==1 {print $1}')
    mkdir "$work/k"; cp "$real" "$work/k/vmlinuz"
    KTSTR_KERNEL="$work/k" "$ktstr" kernel list >"$work/out" 2>"$work/err"; rc=$?
    expect_rc 0
    [ "$(head -1 "$work/out")" = "$work/k/vmlinuz  (chosen: \`ktstr shell\` boots this one)" ] || fail "first: $(head -1 "$work/out")"
    expect_out '^  found by: KTSTR_KERNEL$'; grep -qxF "$real" "$work/out" || fail "$real not listed"
    [ "$(grep -c chosen "$work/out")" = 1 ] || fail "more than one kernel marked chosen"
    run kernel list --kernel="$work/k/vmlinuz"
    expect_rc 0; expect_out '^  found by: --kernel$'
    KTSTR_KERNEL="$work/none" "$ktstr" kernel list >"$work/out" 2>"$work/err"; rc=$?
    expect_rc 1; expect_err "$work/none.*KTSTR_KERNEL"
    grep -qxF "$real" "$work/out" || fail "$real not listed" ;;
  verbose_streams)
    # -v shows the kernel log while the guest runs, not only at the end.
    "$ktstr" shell -v --exec 'sleep 15' >"$work/out" 2>"$work/err" &
    pid=$!
    for _ in $(seq 240); do grep -q 'Run /init as init process' "$work/err" && break; sleep 0.5; done
    grep -q 'Run /init as init process' "$work/err" || { kill "$pid"; fail "no kernel log on stderr"; }
    kill -0 "$pid" 2>/dev/null || fail "the kernel log came only after the run"
    wait "$pid"; rc=$?; expect_rc 0 ;;
  user_panic_not_retried)
    # A panic the configuration causes is reported with what to change, never retried.
    run shell --cmdline rdinit=/nonexistent --exec true
    expect_rc 125; expect_err "kernel panic: before the guest's hello"; expect_err 'rdinit='
    ! grep -q 'retr' "$work/err" || fail "a configuration's panic was retried"
    head -c 130M /dev/zero >"$work/big"  # fits QEMU's initrd limit, not the guest's memory
    run shell --no-cache --memory 160 -i "$work/big" --exec true
    expect_rc 125; expect_err 'ran out of memory \(160 MB'; expect_err 'raise --memory'
    ! grep -q 'retr' "$work/err" || fail "an out-of-memory panic was retried" ;;
  panic_without_reboot)
    # panic=0 from the user: the panic is seen on the console and ends the run at once.
    start=$(date +%s)
    run shell --cmdline panic=0 --exec 'echo c > /proc/sysrq-trigger; sleep 1000'
    expect_rc 125; expect_err 'kernel panic'; expect_err 'sysrq'
    [ $(( $(date +%s) - start )) -lt 150 ] || fail "the panic took $(( $(date +%s) - start )) s to notice" ;;
  qemu_refuses)
    # QEMU itself fails: its own words come back, not an internal error.
    # A boot header of protocol 1.0, which cannot take an initrd.
    head -c 4096 /dev/zero >"$work/not-a-kernel"
    printf 'HdrS\000\001' | dd of="$work/not-a-kernel" bs=1 seek=$((0x202)) conv=notrunc 2>/dev/null
    run shell --kernel "$work/not-a-kernel" --exec true
    expect_rc 125; expect_err 'qemu exited'; expect_err 'kernel too old to load a ram disk' ;;
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
  kernel_entry)
    # The kernel boots through its PVH entry by default (its ELF unpacked once into the
    # cache), and as a bzImage with KTSTR_KERNEL_ENTRY=bzimage; both run the command.
    KTSTR_LOG=debug "$ktstr" shell --exec 'uname -r' >"$work/out" 2>"$work/err" || fail "exit code $?"
    expect_err 'kernel entry: PVH, -kernel .*/pvh/[0-9a-f]+\.elf'
    expect_err 'running qemu.* -kernel [^ ]*/pvh/[0-9a-f]+\.elf '
    expect_out '^[0-9]+\.[0-9]+'
    KTSTR_LOG=debug KTSTR_KERNEL_ENTRY=bzimage "$ktstr" shell --exec 'uname -r' >"$work/out" 2>"$work/err" \
      || fail "exit code $?"
    expect_err 'kernel entry: bzImage \(KTSTR_KERNEL_ENTRY=bzimage\)'
    expect_err 'running qemu.* -kernel [^ ]*vmlinuz '
    expect_out '^[0-9]+\.[0-9]+' ;;
  terminal_faults)
    # On a terminal: Ctrl-\ while ktstr boots does not kill it (Ctrl-C then stops it with 130);
    # SIGTERM mid-session gives 143; the terminal hanging up mid-session ends ktstr without a
    # crash. Each time the terminal's settings come back (when it is still there) and ktstr's
    # temp dir and QEMU are gone.
    mkdir "$work/tmp"
    TMPDIR="$work/tmp" PYTHONPATH=$here python3 - "$ktstr" "$work/tmp" <<'PY' || fail "terminal faults"
import os, select, signal, subprocess, sys, termios, time
from ktstr_pty import read_until, start_on_pty
ktstr, tmp = sys.argv[1], sys.argv[2]

def start():
    return start_on_pty(ktstr, controlling=True)  # keys raise signals

def finish(pid, name, limit=60):
    end = time.time() + limit
    while time.time() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            if os.WIFSIGNALED(status):
                sys.exit(f"{name}: ktstr died of signal {os.WTERMSIG(status)}")
            left = os.listdir(tmp)
            if left:
                sys.exit(f"{name}: left behind in TMPDIR: {left}")
            if subprocess.run(["pgrep", "-f", "qemu-system.*" + tmp],
                              capture_output=True).returncode == 0:
                sys.exit(f"{name}: a QEMU is still running")
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    sys.exit(f"{name}: ktstr did not end")

master, slave, before, pid = start()
time.sleep(1)
os.write(master, b"\x1c")  # Ctrl-\ while ktstr packs or the guest boots
time.sleep(2)
os.write(master, b"\x03")
rc = finish(pid, "ctrl-backslash")
if rc != 130:
    sys.exit(f"Ctrl-\\ then Ctrl-C: exit code {rc}, expected 130")
if termios.tcgetattr(slave) != before:
    sys.exit("terminal settings not restored after Ctrl-C")

master, slave, before, pid = start()
read_until(master, "# ")
os.kill(pid, signal.SIGTERM)
rc = finish(pid, "sigterm")
if rc != 143:
    sys.exit(f"SIGTERM: exit code {rc}, expected 143")
if termios.tcgetattr(slave) != before:
    sys.exit("terminal settings not restored after SIGTERM")

master, slave, before, pid = start()
read_until(master, "# ")
os.write(master, b"sleep 100\r")
time.sleep(1)
os.close(master)
os.close(slave)  # the terminal is gone
rc = finish(pid, "hang-up")
print(f"hang-up: exit code {rc}")
PY
    ;;
  terminal_early_keys)
    # On a terminal that is ktstr's own (keys raise signals): keys typed while the guest boots
    # arrive in order once its shell reads them, and a Ctrl-\ or Ctrl-Z among them does nothing
    # (the guest would kill its shell or drop the line before). They end with `exit 0`: a ^D
    # typed ahead would meet the guest's line discipline in canonical mode while the lines
    # before it run, where it ends a line, not the input. After the start every key has its
    # meaning: a Ctrl-C at once, and later Ctrl-C, Ctrl-Z, Ctrl-\ to the guest's command.
    PYTHONPATH=$here python3 - "$ktstr" <<'PY' || fail "keys typed early or late"
import os, select, sys, termios, time
from ktstr_pty import expect_end, read_until, start_on_pty
ktstr = sys.argv[1]

def booting(slave):
    return termios.tcgetattr(slave)[3] & termios.ISIG  # off once the shell started

def type_early(master, slave, keys, at):
    time.sleep(at)
    if not booting(slave):
        sys.exit(f"the shell started before {at} s: the keys would not be early")
    os.write(master, keys)

master, slave, before, pid = start_on_pty(ktstr, controlling=True)
start = time.time()
type_early(master, slave, b"echo e1-$((1+1))\r", 0.5)
type_early(master, slave, b"\x1c\x1a", 0.5)
type_early(master, slave, b"echo e2-$((2+2))\r\x1c", 1)
type_early(master, slave, b"\x1aexit 0\r", 1)
seen = expect_end(pid, master, slave, before, 0, "early keys ending in `exit 0`", 300)
if not 0 <= seen.find(b"e1-2") < seen.find(b"e2-4"):
    sys.exit(f"early keys: lines lost or out of order; the terminal showed {seen[-600:]!r}")
print(f"early keys: both lines ran, then `exit 0` ({time.time() - start:.0f} s)")

master, slave, before, pid = start_on_pty(ktstr, controlling=True)
seen, end = b"", time.time() + 240
while booting(slave):  # the host says the shell started: Ctrl-C at once
    if time.time() > end:
        sys.exit(f"the shell did not start; the terminal showed {seen[-400:]!r}")
    if select.select([master], [], [], 0.001)[0]:
        seen += os.read(master, 65536)
os.write(master, b"\x03")
read_until(master, "# ", 60)
steps = [(b"echo up-$((1+1))\r", "up-2"),
         (b"sh -c 'echo running-$((6*7)); exec sleep 100'\r", "running-42"), (b"\x03", "# "),
         (b"echo after-c-$?\r", "after-c-130"),
         (b"sh -c 'echo running-$((7*7)); exec sleep 100'\r", "running-49"), (b"\x1c", "# "),
         (b"echo after-q-$?\r", "after-q-131"),
         (b"sleep 100\r", "sleep 100"), (b"\x1a", "Stopped"), (b"fg\r", "sleep 100"),
         (b"\x03", "# "), (b"echo after-z-$?\r", "after-z-130"),
         (b"exit 4\r", "exit 4")]
for send, expect in steps:
    time.sleep(0.5)  # the command runs in the foreground before the key comes
    os.write(master, send)
    read_until(master, expect, 30)
expect_end(pid, master, slave, before, 4, "keys after the start, then `exit 4`")
PY
    ;;
  *) fail "unknown case $case_name" ;;
esac
echo "PASS: $case_name"
