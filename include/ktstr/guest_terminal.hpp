// The user's terminal while an interactive guest shell runs on it: quiet from the start (no
// local echo, so what is typed while the guest boots shows once, when the guest echoes it;
// Ctrl-C still stops ktstr; Ctrl-\ and Ctrl-Z do nothing), then raw once the guest's shell
// runs (every byte, Ctrl-C included, goes to the guest). The settings it found come back when
// it is destroyed.
#pragma once

#include <termios.h>

namespace ktstr {

class GuestTerminal {
  public:
    explicit GuestTerminal(int fd);  // and makes it quiet
    GuestTerminal(const GuestTerminal&) = delete;
    GuestTerminal& operator=(const GuestTerminal&) = delete;
    ~GuestTerminal();

    void make_quiet();
    void make_quiet_if_possible() noexcept;
    void make_raw();

  private:
    termios quiet() const;
    void apply(const termios& t, const char* what);
    int fd_;
    termios saved_{};
};

}  // namespace ktstr
