"""ktstr on a fresh pseudo-terminal, for the terminal cases of shell_cases.sh."""
import fcntl
import os
import pty
import termios


def start_on_pty(ktstr, controlling=False):
    """Starts `ktstr shell` on a new pty; returns (master, slave, its settings before, pid).

    With controlling, the pty is ktstr's controlling terminal, so its keys raise signals.
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
        os.execv(ktstr, [ktstr, "shell"])
    return master, slave, before, pid
