#include "ktstr/vm_run.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <deque>
#include <optional>
#include <utility>

#include "guest_output.hpp"
#include "ktstr/error.hpp"
#include "ktstr/fd.hpp"
#include "ktstr/guest_terminal.hpp"
#include "ktstr/log.hpp"
#include "ktstr/pvh_image.hpp"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace ktstr {
namespace {

constexpr double kShutdownGraceS = 15;  // verdict sent, waiting for power-off
constexpr double kRunMarginS = 30;      // beyond the guest's own timeout
// Unpacking the initramfs is most of a big guest's boot. Measured with the 7.3 kernel under
// TCG on a loaded 2-core host: 512 MB more took 45 s more to hello (11 MB/s); the default
// allows twice that. Not measured under KVM (none here): 50 MB/s is a guess on the safe side.
constexpr double kTcgUnpackMbPerS = 5;
constexpr double kKvmUnpackMbPerS = 50;
// The guest's terminal (canonical mode) holds 4095 bytes of a line and its end, and cuts the
// rest (measured: 4096 and ^D is cut). A ^D within a line hands the reader what came so far
// without ending the input, so a script's longer line goes in pieces the shell joins again.
constexpr size_t kTerminalLineMax = 4095;
constexpr double kEndOfInputRepeatMs = 200;  // a script's ^D, again until the verdict

double ms_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

Fd listen_unix(const fs::path& path) {
    Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) throw_errno("cannot create socket");
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    auto s = path.string();
    if (s.size() >= sizeof addr.sun_path) throw Error("socket path too long: " + quoted(s));
    std::copy(s.begin(), s.end(), addr.sun_path);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        throw_errno("cannot bind socket " + quoted(s));
    if (::listen(fd.get(), 1) != 0) throw_errno("cannot listen on socket " + quoted(s));
    return fd;
}

// stop_signals(), blocked while the VM runs and read via signalfd.
class HostSignals {
  public:
    HostSignals() : set_(stop_signals()) {
        if (::pthread_sigmask(SIG_BLOCK, &set_, &old_) != 0) throw_errno("cannot block signals");
        fd_.reset(::signalfd(-1, &set_, SFD_CLOEXEC | SFD_NONBLOCK));
        if (!fd_) throw_errno("cannot create signalfd");
    }
    ~HostSignals() { ::pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
    int fd() const { return fd_.get(); }

  private:
    sigset_t set_{}, old_{};
    Fd fd_;
};

struct Qemu {
    pid_t pid = -1;
    Fd pidfd;
    bool reaped = false;
    int status = 0;

    void kill_now() {
        if (pid > 0 && !reaped) ::kill(pid, SIGKILL);
    }
    void reap() {
        if (pid <= 0 || reaped) return;
        while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        reaped = true;
    }
    ~Qemu() {
        kill_now();
        reap();
    }
};

void start_qemu(Qemu& q, const std::vector<std::string>& argv, const fs::path& stderr_log) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    Fd err = Fd::open(stderr_log.string(), O_WRONLY | O_CREAT | O_TRUNC);
    Fd devnull = Fd::open("/dev/null", O_RDONLY);
    pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid < 0) throw_errno("cannot fork for qemu");
    if (pid == 0) {
        // Own group, so Ctrl-C on the host terminal reaches us, not QEMU mid-write.
        ::setpgid(0, 0);
        // QEMU dies with us, even when we are SIGKILLed; if we died before the prctl took
        // effect, nobody would send the signal, so the child checks it still has us.
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) ::_exit(127);
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        ::dup2(devnull.get(), 0);
        ::dup2(err.get(), 1);
        ::dup2(err.get(), 2);
        ::execvp(args[0], args.data());
        dprintf(err.get(), "cannot run %s: %s\n", args[0], strerror(errno));
        ::_exit(127);
    }
    q.pid = pid;
    q.pidfd.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    if (!q.pidfd) throw_errno("cannot open pidfd for qemu");
}

std::string tail_lines(const std::string& text, size_t n) {
    size_t pos = text.size();
    for (size_t i = 0; i <= n; ++i) {
        if (pos == 0) return text;
        pos = text.rfind('\n', pos - 1);
        if (pos == std::string::npos) return text;
    }
    return text.substr(pos + 1);
}

constexpr size_t kConsoleKeep = 4 << 20;  // console bytes kept for the tail and the reasons
constexpr double kPanicReportMs = 2000;   // after the panic line: the rest of its report

// The panic's own line, without its timestamp or line end.
std::string panic_text(const std::string& console, size_t line_start) {
    auto at = console.find("Kernel panic", line_start);
    auto end = console.find_first_of("\r\n", at);
    return console.substr(at, end == std::string::npos ? std::string::npos : end - at);
}

// One connection per port; data is read as it comes.
struct Channel {
    Fd listener;
    Fd conn;
    bool eof = false;
};

enum ChannelIndex { kCtl, kOut, kErr, kConsole, kChannels };

class VmSession {
  public:
    VmSession(const VmSpec& spec, const protocol::Job& job)
        : spec_(spec),
          job_(job),
          stdout_fd_(spec.stdout_fd),
          stderr_fd_(spec.stderr_fd),
          console_fd_(spec.console_fd) {}
    VmResult run();

  private:
    void open_channels();
    QemuConfig qemu_config();
    void loop();
    void handle_control_line(const std::string& line);
    void share_lines();
    void on_readable(int index);
    void on_console(const char* data, size_t n);
    void emit(int index, const char* data, size_t n);
    bool wants_input() const;
    void read_input();
    void take_keys(const char* data, size_t n);
    void queue_script(const char* data, size_t n);
    void repeat_end_of_input(double now_ms);
    void write_input();
    double deadline_ms() const;
    double next_timer_ms() const;
    void finish_outcome();

    const VmSpec& spec_;
    const protocol::Job& job_;
    int stdout_fd_, stderr_fd_, console_fd_;
    TempDir dir_{"ktstr-vm"};
    Channel channels_[kChannels];
    std::string control_buf_;
    std::string console_, console_line_;
    std::string to_console_;  // input the console has not taken yet
    char last_input_ = '\n';
    size_t line_bytes_ = 0;   // of the script's current line, on the guest's terminal
    size_t early_keys_ = 0;   // typed before the guest's shell read its terminal, not read yet
    double last_eof_ms_ = 0;  // when the script's end (^D) was last queued
    bool console_closed_ = false;
    SharedLines shared_;
    std::optional<GuestTerminal> own_terminal_;
    GuestTerminal* terminal_ = nullptr;
    Qemu qemu_;
    VmResult result_;
    Clock::time_point t0_ = Clock::now();
    bool job_on_cmdline_ = false;
    bool hello_ = false, started_ = false, verdict_ = false, qemu_exited_ = false;
    bool interrupted_ = false, timed_out_ = false, input_done_ = false, panic_done_ = false;
    std::optional<double> panic_ms_;
    double verdict_ms_ = 0, exit_ms_ = 0;
};

void VmSession::open_channels() {
    const char* names[] = {"ctl.sock", "out.sock", "err.sock", "console.sock"};
    for (int i = 0; i < kChannels; ++i) channels_[i].listener = listen_unix(dir_.path() / names[i]);
}

QemuConfig VmSession::qemu_config() {
    QemuConfig qc;
    qc.kernel = spec_.boot_image.empty() ? spec_.kernel.image : spec_.boot_image;
    qc.initramfs = spec_.initramfs;
    qc.accel = spec_.accel.accel;
    qc.topology = spec_.topology;
    qc.memory_mb = spec_.memory_mb;
    qc.cmdline_extra = spec_.cmdline_extra;
    qc.console_socket = dir_.path() / "console.sock";
    qc.control_socket = dir_.path() / "ctl.sock";
    qc.stdout_socket = dir_.path() / "out.sock";
    qc.stderr_socket = dir_.path() / "err.sock";
    qc.verbose = spec_.verbose;
    // On the command line init has its job at once, without a round trip on the control port.
    auto word = protocol::job_word(job_);
    job_on_cmdline_ = kernel_cmdline(qc).size() + 1 + word.size() <= kMaxKernelCmdline;
    log(LogLevel::Debug, "job ({} bytes as {}) {}", word.size(), protocol::kJobWord,
        job_on_cmdline_ ? "on the kernel command line"
                        : "too long for the kernel command line: sent after the hello");
    if (job_on_cmdline_) qc.job_word = std::move(word);
    return qc;
}

// The next time something is due that no fd announces (-1: none).
double VmSession::next_timer_ms() const {
    double next = shared_.next_ms();
    if (!terminal_ && input_done_ && !verdict_ && !console_closed_ && !qemu_exited_) {
        double eof = last_eof_ms_ + kEndOfInputRepeatMs;
        next = next < 0 ? eof : std::min(next, eof);
    }
    return next;
}

double VmSession::deadline_ms() const {
    if (qemu_exited_) return exit_ms_ + 2000;  // draining what the sockets still hold
    if (panic_ms_) return *panic_ms_ + (panic_done_ ? 100 : kPanicReportMs);
    if (verdict_) return verdict_ms_ + kShutdownGraceS * 1000;
    if (!hello_) return spec_.boot_timeout_s * 1000;
    if (job_.timeout_s <= 0) return -1;
    return result_.ms_to_hello + (job_.timeout_s + kRunMarginS) * 1000;
}

// Streams that end up in one place are written line by line (SharedLines), unless the console
// is the user's terminal: there the shell's prompt must show at once.
void VmSession::share_lines() {
    if (terminal_ || console_fd_ < 0) return;
    auto same = [](int a, int b) {
        if (a < 0 || b < 0) return false;
        if (a == b) return true;
        struct stat sa = {}, sb = {};
        return ::fstat(a, &sa) == 0 && ::fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
               sa.st_ino == sb.st_ino;
    };
    if (same(stdout_fd_, console_fd_)) shared_.add_stream(kOut, &stdout_fd_);
    if (same(stderr_fd_, console_fd_)) shared_.add_stream(kErr, &stderr_fd_);
    if (shared_.has(kOut) || shared_.has(kErr)) shared_.add_stream(kConsole, &console_fd_);
}

void VmSession::emit(int index, const char* data, size_t n) {
    if (shared_.has(index)) return shared_.add(index, data, n, ms_since(t0_));
    int& fd = index == kOut ? stdout_fd_ : index == kErr ? stderr_fd_ : console_fd_;
    forward(fd, data, n, index == kConsole ? "console" : "guest output");
}

void VmSession::handle_control_line(const std::string& line) {
    nlohmann::json msg = nlohmann::json::parse(line, nullptr, false);
    if (msg.is_discarded() || !msg.is_object()) {
        log(LogLevel::Debug, "ignoring a malformed control line from the guest");
        return;
    }
    auto type = msg.value("type", "");
    if (type == "hello" && !hello_) {
        hello_ = true;
        result_.ms_to_hello = ms_since(t0_);
        result_.hello = msg.get<protocol::Hello>();
        log(LogLevel::Debug, "guest hello after {:.0f} ms", result_.ms_to_hello);
        if (!job_on_cmdline_) {
            auto text = nlohmann::json(job_).dump() + "\n";
            write_all(channels_[kCtl].conn.get(), text.data(), text.size(), "job to the guest");
        }
    } else if (type == "started" && !started_) {
        started_ = true;
        if (terminal_) {
            terminal_->make_raw();
            early_keys_ = terminal_->typed_ahead();
            log(LogLevel::Debug, "{} bytes typed before the guest's shell started", early_keys_);
        }
    } else if (type == "verdict" && !verdict_) {
        verdict_ = true;
        verdict_ms_ = ms_since(t0_);
        result_.verdict = msg.get<protocol::Verdict>();
    } else if (type == "log") {
        log(LogLevel::Debug, "guest: {}", msg.value("text", ""));
    }
}

// Streams the console, keeps its end, and notes a panic the moment its line is printed: with
// panic=0 on the command line the guest would otherwise sit there until the timeout.
void VmSession::on_console(const char* data, size_t n) {
    emit(kConsole, data, n);
    console_.append(data, n);
    if (console_.size() > kConsoleKeep) console_.erase(0, console_.size() - kConsoleKeep / 2);

    console_line_.append(data, n);
    size_t nl;
    while ((nl = console_line_.find('\n')) != std::string::npos) {
        auto line = console_line_.substr(0, nl + 1);
        console_line_.erase(0, nl + 1);
        if (!panic_ms_ && find_panic(line) != std::string::npos) {
            panic_ms_ = ms_since(t0_);
            log(LogLevel::Debug, "kernel panic on the console after {:.0f} ms", *panic_ms_);
        } else if (panic_ms_ && line.find("---[ end Kernel panic") != std::string::npos) {
            panic_done_ = true;
        }
    }
    if (console_line_.size() > 65536) console_line_.clear();  // no line is that long
}

void VmSession::on_readable(int index) {
    auto& ch = channels_[index];
    char buf[65536];
    ssize_t n = ::read(ch.conn.get(), buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
    if (n <= 0) {
        ch.eof = true;
        return;
    }
    auto size = static_cast<size_t>(n);
    if (index == kCtl) {
        control_buf_.append(buf, size);
        size_t nl;
        while ((nl = control_buf_.find('\n')) != std::string::npos) {
            handle_control_line(control_buf_.substr(0, nl));
            control_buf_.erase(0, nl + 1);
        }
    } else if (index == kConsole) {
        on_console(buf, size);
    } else {
        emit(index, buf, size);
    }
}

// Input is read only while the console has taken everything before it, and only once the
// guest has started the shell: until then it waits where it is (pipe, terminal, file).
bool VmSession::wants_input() const {
    const auto& con = channels_[kConsole];
    return spec_.input_fd >= 0 && started_ && !verdict_ && !input_done_ && to_console_.empty() &&
           con.conn && !con.eof;
}

void VmSession::read_input() {
    char buf[4096];
    ssize_t n = ::read(spec_.input_fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
    if (n > 0) {
        if (terminal_)
            take_keys(buf, static_cast<size_t>(n));
        else
            queue_script(buf, static_cast<size_t>(n));
        last_input_ = buf[n - 1];
        return;
    }
    // The end of the input (or input that cannot be read): ^D at the start of a line is the
    // shell's end of input, so a last line without a newline gets one first.
    if (n < 0) log(LogLevel::Debug, "input ends: {}", strerror(errno));
    to_console_ += last_input_ == '\n' ? "\x04" : "\n\x04";
    input_done_ = true;
    last_eof_ms_ = ms_since(t0_);
}

// Keys typed before the shell started go as typed, but for the guest's signal keys: its shell
// only now reads them, and they belong to the time ktstr was booting.
void VmSession::take_keys(const char* data, size_t n) {
    size_t early = std::min(n, early_keys_);
    early_keys_ -= early;
    for (size_t i = 0; i < early; ++i)
        if (!is_guest_signal_key(data[i])) to_console_ += data[i];
    to_console_.append(data + early, n - early);
}

void VmSession::queue_script(const char* data, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        if (data[i] == '\n' || data[i] == '\x04') {
            line_bytes_ = 0;
        } else if (++line_bytes_ > kTerminalLineMax) {
            to_console_ += '\x04';
            line_bytes_ = 1;
        }
        to_console_ += data[i];
    }
}

// A pipe's end is for good, a terminal's ^D for one read: a command in the script that reads
// the input to its end (cat) takes the ^D, and the shell would wait for more. So ^D goes
// again every kEndOfInputRepeatMs until the verdict; every later read of the terminal ends.
void VmSession::repeat_end_of_input(double now_ms) {
    if (terminal_ || !input_done_ || verdict_ || console_closed_ || qemu_exited_ ||
        !to_console_.empty() || now_ms < last_eof_ms_ + kEndOfInputRepeatMs)
        return;
    to_console_ = "\x04";
    last_eof_ms_ = now_ms;
}

void VmSession::write_input() {
    ssize_t n = ::send(channels_[kConsole].conn.get(), to_console_.data(), to_console_.size(),
                       MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) to_console_.erase(0, static_cast<size_t>(n));
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
        log(LogLevel::Debug, "the console takes no more input: {}", strerror(errno));
        to_console_.clear();
        input_done_ = true;
        console_closed_ = true;
    }
}

void VmSession::loop() {
    std::optional<HostSignals> own_signals;
    if (spec_.cancel_fd < 0) own_signals.emplace();
    int stop_fd = own_signals ? own_signals->fd() : spec_.cancel_fd;
    auto argv = qemu_argv(qemu_config());
    std::string shown;
    for (const auto& a : argv) shown += " " + a;
    log(LogLevel::Debug, "running{}", shown);
    terminal_ = spec_.terminal;
    if (!terminal_ && spec_.input_fd >= 0 && ::isatty(spec_.input_fd))
        terminal_ = &own_terminal_.emplace(spec_.input_fd);
    share_lines();
    start_qemu(qemu_, argv, dir_.path() / "qemu.stderr");

    enum { kListener = 10, kQemu = 20, kStop = 21, kInput = 22 };
    for (;;) {
        shared_.pump(ms_since(t0_));
        repeat_end_of_input(ms_since(t0_));
        std::vector<pollfd> fds;
        std::vector<int> who;  // channel index, kListener + index, kQemu, kStop, kInput
        for (int i = 0; i < kChannels; ++i) {
            auto& ch = channels_[i];
            short events = POLLIN;
            if (i == kConsole && !to_console_.empty()) events |= POLLOUT;
            if (ch.conn && !ch.eof)
                fds.push_back({ch.conn.get(), events, 0}), who.push_back(i);
            else if (!ch.conn)
                fds.push_back({ch.listener.get(), POLLIN, 0}), who.push_back(kListener + i);
        }
        if (!qemu_exited_) fds.push_back({qemu_.pidfd.get(), POLLIN, 0}), who.push_back(kQemu);
        if (!interrupted_) fds.push_back({stop_fd, POLLIN, 0}), who.push_back(kStop);
        if (wants_input()) fds.push_back({spec_.input_fd, POLLIN, 0}), who.push_back(kInput);

        bool all_eof = std::all_of(std::begin(channels_), std::end(channels_),
                                   [](const Channel& c) { return !c.conn || c.eof; });
        if (qemu_exited_ && all_eof) return;

        double deadline = deadline_ms(), timer = next_timer_ms();
        double wake = deadline < 0 ? timer : timer < 0 ? deadline : std::min(deadline, timer);
        int wait_ms = wake < 0 ? -1 : std::max(0, int(wake - ms_since(t0_)) + 1);
        int n = ::poll(fds.data(), fds.size(), wait_ms);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw_errno("cannot poll the VM's channels");
        if (n == 0 && (deadline < 0 || ms_since(t0_) < deadline)) continue;  // a timer's turn
        if (n == 0) {
            if (qemu_exited_) return;           // drained long enough
            if (!panic_ms_) timed_out_ = true;  // after a panic: its report is complete
            qemu_.kill_now();
            qemu_.reap();
            qemu_exited_ = true;
            exit_ms_ = ms_since(t0_);
            continue;
        }
        for (size_t i = 0; i < fds.size(); ++i) {
            if (!fds[i].revents) continue;
            int w = who[i];
            if (w < kChannels) {
                if (fds[i].revents & POLLOUT) write_input();
                if (fds[i].revents & ~POLLOUT) on_readable(w);
            } else if (w < kQemu) {
                auto& ch = channels_[w - kListener];
                int flags = SOCK_CLOEXEC | (w - kListener == kConsole ? SOCK_NONBLOCK : 0);
                ch.conn.reset(::accept4(ch.listener.get(), nullptr, nullptr, flags));
            } else if (w == kQemu) {
                qemu_.reap();
                qemu_exited_ = true;
                exit_ms_ = ms_since(t0_);
            } else if (w == kInput) {
                read_input();
            } else {
                if (own_signals) {
                    signalfd_siginfo si{};
                    if (::read(stop_fd, &si, sizeof si) > 0) {
                        log(LogLevel::Warn, "got signal {}; stopping the VM", si.ssi_signo);
                        result_.stop_signal = int(si.ssi_signo);
                    }
                }
                interrupted_ = true;
                qemu_.kill_now();
            }
        }
    }
}

void VmSession::finish_outcome() {
    result_.console_tail = tail_lines(console_, 40);
    if (spec_.verbose) result_.console = console_;
    auto panic_at = find_panic(console_);
    result_.ms_total = ms_since(t0_);
    result_.ms_qemu_exit = exit_ms_;
    if (interrupted_) {
        result_.outcome = Outcome::Interrupted;
        result_.reason = fmt::format("ktstr got signal {} ({})", result_.stop_signal,
                                     strsignal(result_.stop_signal));
    } else if (verdict_) {
        result_.outcome = Outcome::Verdict;
        if (timed_out_) log(LogLevel::Warn, "guest did not power off after its verdict");
    } else if (panic_at != std::string::npos && !hello_) {
        std::error_code ec;
        auto size = fs::file_size(spec_.initramfs, ec);
        auto why = explain_early_panic(console_, spec_.memory_mb, ec ? 0 : size);
        result_.outcome = Outcome::KernelPanic;
        result_.reason = why.reason;
        result_.boot_race = why.boot_race;
    } else if (panic_at != std::string::npos) {
        result_.outcome = Outcome::KernelPanic;
        result_.reason = panic_text(console_, panic_at);
    } else if (timed_out_ && !hello_) {
        result_.outcome = Outcome::BootTimeout;
        result_.reason = fmt::format(
            "no hello from the guest within {:g} s (boot hang, wrong kernel, or an "
            "accelerator that cannot run it; accel: {}; --boot-timeout sets the limit)",
            spec_.boot_timeout_s, spec_.accel.accel == Accel::Kvm ? "kvm" : "tcg");
    } else if (timed_out_) {
        result_.outcome = Outcome::RunTimeout;
        result_.reason = fmt::format("no verdict within {:.0f} s of the guest's hello",
                                     job_.timeout_s + kRunMarginS);
    } else if (!hello_) {
        result_.outcome = Outcome::QemuFailed;
        auto err = read_file_if_present((dir_.path() / "qemu.stderr").c_str()).value_or("");
        int st = qemu_.status;
        result_.reason = fmt::format("qemu exited ({}) before the guest said hello{}{}",
                                     WIFEXITED(st) ? fmt::format("status {}", WEXITSTATUS(st))
                                                   : fmt::format("signal {}", WTERMSIG(st)),
                                     err.empty() ? "" : ": ", tail_lines(err, 10));
    } else {
        result_.outcome = Outcome::NoVerdict;
        result_.reason = "the guest stopped without a verdict";
    }
}

VmResult VmSession::run() {
    open_channels();
    loop();
    shared_.finish();
    if (terminal_) terminal_->make_quiet_if_possible();  // as before the guest's shell ran
    own_terminal_.reset();
    finish_outcome();
    return result_;
}

}  // namespace

std::size_t find_panic(const std::string& console) {
    static constexpr std::string_view kPanic = "Kernel panic - not syncing";
    for (auto at = console.find(kPanic); at != std::string::npos;
         at = console.find(kPanic, at + 1)) {
        auto start = console.rfind('\n', at);
        start = start == std::string::npos ? 0 : start + 1;
        // The kernel's own line: nothing before the words but its timestamp, "[    1.234] ".
        auto prefix = std::string_view(console).substr(start, at - start);
        if (prefix.empty() || (prefix.front() == '[' && prefix.size() >= 3 &&
                               prefix.substr(prefix.size() - 2) == "] " &&
                               prefix.find_first_not_of("[]0123456789.TC ") == prefix.npos))
            return start;
    }
    return std::string::npos;
}

EarlyPanic explain_early_panic(const std::string& console, int memory_mb,
                               std::uintmax_t initramfs_bytes) {
    EarlyPanic e;
    auto at = find_panic(console);
    if (at == std::string::npos) return e;
    auto has = [&](std::string_view words) { return console.find(words) != std::string::npos; };

    std::string why;
    if (has("deadlocked on memory") || has("Out of memory") || has("out of memory") ||
        has("Initramfs unpacking failed")) {
        why = fmt::format(
            "the guest ran out of memory ({} MB for a {} MB initramfs): raise "
            "--memory, or leave it out for 512 MB + 3x the initramfs",
            memory_mb, (initramfs_bytes + (1 << 20) - 1) >> 20);
    } else if (has("No working init found") || has("Requested init") ||
               has("Unable to mount root fs") || has("Attempted to kill init")) {
        why =
            "the kernel could not run ktstr's /init: check the --cmdline words (rdinit=, "
            "init=, root=)";
    } else if (console.rfind("Oops: int3", at) != std::string::npos) {
        e.boot_race = true;
        why =
            "an int3 oops in early boot, the TCG text-patching race: not this "
            "configuration's fault";
    } else {
        why =
            "not the TCG early-boot race (no int3 oops before it), so not retried: suspect "
            "the --cmdline words or --memory";
    }
    e.reason = "before the guest's hello: " + panic_text(console, at) + "; " + why;
    return e;
}

double default_boot_timeout_s(Accel accel, std::uintmax_t initramfs_bytes) {
    double mb = double(initramfs_bytes) / (1 << 20);
    return accel == Accel::Kvm ? 30 + mb / kKvmUnpackMbPerS : 120 + mb / kTcgUnpackMbPerS;
}

const char* outcome_name(Outcome o) {
    switch (o) {
        case Outcome::Verdict:
            return "verdict";
        case Outcome::BootTimeout:
            return "boot timeout";
        case Outcome::RunTimeout:
            return "run timeout";
        case Outcome::KernelPanic:
            return "kernel panic";
        case Outcome::QemuFailed:
            return "qemu failed";
        case Outcome::NoVerdict:
            return "no verdict";
        case Outcome::Interrupted:
            return "interrupted";
    }
    return "?";
}

int VmResult::exit_code() const {
    if (outcome == Outcome::Interrupted) return 128 + stop_signal;
    if (outcome != Outcome::Verdict) return 125;
    if (verdict.timed_out) return 124;
    if (verdict.signal) return 128 + *verdict.signal;
    if (verdict.exit_code) return *verdict.exit_code;
    return 125;
}

sigset_t stop_signals() {
    sigset_t set;
    sigemptyset(&set);
    for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&set, s);
    return set;
}

VmResult run_vm(const VmSpec& spec, const protocol::Job& job) {
    VmSpec s = spec;
    std::error_code ec;
    std::uintmax_t initrd = fs::file_size(s.initramfs, ec);
    if (ec) initrd = 0;
    if (s.boot_timeout_s <= 0) s.boot_timeout_s = default_boot_timeout_s(s.accel.accel, initrd);
    if (s.boot_image.empty()) {
        auto pvh = pvh_image(s.kernel.image, pvh_cache_dir());
        if (pvh.elf && !pvh_fits(pvh, uint64_t(s.memory_mb) << 20, initrd)) {
            pvh.why = fmt::format(
                "the {} MB initramfs would overwrite the PVH kernel in {} MB of memory; the "
                "bzImage's decompressor moves out of its way",
                initrd >> 20, s.memory_mb);
            pvh.elf.reset();
        }
        if (pvh.elf) s.boot_image = *pvh.elf;
        log(pvh.warn ? LogLevel::Warn : LogLevel::Debug, "kernel entry: {} ({})",
            pvh.elf ? "PVH, -kernel " + pvh.elf->string() : "bzImage", pvh.why);
    }
    VmResult r = VmSession(s, job).run();
    if (r.boot_race) {
        log(LogLevel::Warn, "kernel panic {}; retrying once", r.reason);
        r = VmSession(s, job).run();
        r.boot_attempts = 2;
    }
    return r;
}

}  // namespace ktstr
