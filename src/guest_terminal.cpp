#include "ktstr/guest_terminal.hpp"

#include "ktstr/error.hpp"

namespace ktstr {

GuestTerminal::GuestTerminal(int fd) : fd_(fd) {
    if (::tcgetattr(fd, &saved_) != 0) throw_errno("cannot read the terminal's settings");
    make_quiet();
}

GuestTerminal::~GuestTerminal() {
    ::tcsetattr(fd_, TCSANOW, &saved_);
}

void GuestTerminal::make_quiet() {
    termios quiet = saved_;
    quiet.c_lflag &= ~(ECHO | ECHONL);
    apply(quiet, "cannot turn off the terminal's echo");
}

void GuestTerminal::make_raw() {
    termios raw = saved_;
    ::cfmakeraw(&raw);
    raw.c_oflag |= OPOST | ONLCR;
    apply(raw, "cannot put the terminal in raw mode");
}

void GuestTerminal::apply(const termios& t, const char* what) {
    if (::tcsetattr(fd_, TCSANOW, &t) != 0) throw_errno(what);
}

}  // namespace ktstr
