// The user's terminal while an interactive guest shell runs on it: quiet from the start (no
// local echo, so what is typed while the guest boots shows once, when the guest echoes it;
// Ctrl-C still stops ktstr; Ctrl-\ and Ctrl-Z do nothing), then raw once the guest's shell
// runs (every byte, Ctrl-C included, goes to the guest). The settings it found come back when
// it is destroyed.
#pragma once

#include <termios.h>

#include <cstddef>

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
    // The bytes typed and not read yet.
    std::size_t typed_ahead() const;

  private:
    termios quiet() const;
    void apply(const termios& t, const char* what);
    int fd_;
    termios saved_{};
};

// The keys the guest's terminal turns into signals (Ctrl-C, Ctrl-\, Ctrl-Z): typed before its
// shell ran, they are dropped, not sent.
bool is_guest_signal_key(char c);

}  // namespace ktstr
