"""ktstr on a fresh pseudo-terminal, for the terminal cases of shell_cases.sh."""
import fcntl
import os
import pty
import select
import signal
import sys
import termios
import time


def start_on_pty(ktstr, controlling=False, args=()):
    """Starts `ktstr shell` on a new pty; returns (master, slave, its settings before, pid).

    With controlling, the pty is ktstr's controlling terminal, so its keys raise signals;
    args go after `shell`.
    """
    master, slave = pty.openpty()
    before = termios.tcgetattr(slave)
    pid = os.fork()
    if pid == 0:
        os.setsid()
        os.close(master)
        for fd in (0, 1, 2):
            os.dup2(slave, fd)
        if controlling:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        os.execv(ktstr, [ktstr, "shell", *args])
    return master, slave, before, pid


def read_until(master, text, limit=240):
    """Reads the pty until `text` shows; returns what came. Exits when it does not in time."""
    seen, end = b"", time.time() + limit
    while text.encode() not in seen:
        if not select.select([master], [], [], max(0, end - time.time()))[0]:
            sys.exit(f"no {text!r} on the terminal; it showed {seen[-400:]!r}")
        seen += os.read(master, 65536)
    return seen


def wait_exit(pid, master, limit=120):
    """Waits for ktstr to end, reading the pty meanwhile; returns (wait status, what came).

    Kills it and exits when it runs past `limit` seconds.
    """
    seen, end = b"", time.time() + limit
    while time.time() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status, seen
        if select.select([master], [], [], 1)[0]:
            try:
                seen += os.read(master, 65536)
            except OSError:
                pass
    os.kill(pid, signal.SIGKILL)
    sys.exit("ktstr did not end")


def expect_end(pid, master, slave, before, rc, name, limit=120):
    """Waits for ktstr to end with exit code `rc` and the pty's settings `before` back;
    exits naming `name` otherwise. Returns what the pty showed meanwhile."""
    status, seen = wait_exit(pid, master, limit)
    got = os.waitstatus_to_exitcode(status)
    if got != rc:
        sys.exit(f"{name}: exit code {got}, expected {rc}; the terminal showed {seen[-600:]!r}")
    if termios.tcgetattr(slave) != before:
        sys.exit(f"{name}: terminal settings not restored")
    return seen
