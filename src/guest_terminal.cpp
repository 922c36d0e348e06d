#include "ktstr/guest_terminal.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include "ktstr/error.hpp"

namespace ktstr {

GuestTerminal::GuestTerminal(int fd) : fd_(fd) {
    if (::tcgetattr(fd, &saved_) != 0) throw_errno("cannot read the terminal's settings");
    make_quiet();
}

GuestTerminal::~GuestTerminal() {
    ::tcsetattr(fd_, TCSANOW, &saved_);
}

termios GuestTerminal::quiet() const {
    termios t = saved_;
    // Keys wait as typed, for the guest's shell to edit: canonical mode would edit them here and
    // keep a ^D as a NUL byte.
    t.c_lflag &= ~(ECHO | ECHONL | ICANON);
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    // Ctrl-C stays the one key that stops ktstr (cleanly, through its signalfd): Ctrl-\ and
    // Ctrl-Z would kill or stop it without cleaning up.
    t.c_cc[VQUIT] = _POSIX_VDISABLE;
    t.c_cc[VSUSP] = _POSIX_VDISABLE;
    return t;
}

void GuestTerminal::make_quiet() {
    apply(quiet(), "cannot turn off the terminal's echo");
}

void GuestTerminal::make_quiet_if_possible() noexcept {
    termios t = quiet();
    ::tcsetattr(fd_, TCSANOW, &t);  // a terminal that hung up takes nothing: nothing to restore
}

// Every key, Ctrl-C included, goes to the guest's shell; output processing stays on, so our
// own log lines still end their lines.
void GuestTerminal::make_raw() {
    termios raw = saved_;
    ::cfmakeraw(&raw);
    raw.c_oflag |= OPOST | ONLCR;
    apply(raw, "cannot put the terminal in raw mode");
}

std::size_t GuestTerminal::typed_ahead() const {
    int n = 0;
    if (::ioctl(fd_, FIONREAD, &n) != 0) throw_errno("cannot count the keys typed ahead");
    return static_cast<std::size_t>(n);
}

bool is_guest_signal_key(char c) {
    return c == '\x03' || c == '\x1c' || c == '\x1a';
}

void GuestTerminal::apply(const termios& t, const char* what) {
    if (::tcsetattr(fd_, TCSANOW, &t) != 0) throw_errno(what);
}

}  // namespace ktstr
