#include "ktstr/vm_run.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <chrono>
#include <deque>
#include <fstream>
#include <optional>
#include <sstream>

#include "ktstr/error.hpp"
#include "ktstr/fd.hpp"
#include "ktstr/log.hpp"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace ktstr {
namespace {

constexpr double kShutdownGraceS = 15;  // verdict sent, waiting for power-off
constexpr double kRunMarginS = 30;      // beyond the guest's own timeout

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

// Signals that end the run cleanly: blocked while the VM runs, read via signalfd.
class HostSignals {
public:
    HostSignals() {
        sigemptyset(&set_);
        for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&set_, s);
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

void start_qemu(Qemu& q, const std::vector<std::string>& argv, const fs::path& stderr_log,
                bool own_group) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    Fd err = Fd::open(stderr_log.string(), O_WRONLY | O_CREAT | O_TRUNC);
    Fd devnull = Fd::open("/dev/null", O_RDONLY);
    pid_t pid = ::fork();
    if (pid < 0) throw_errno("cannot fork for qemu");
    if (pid == 0) {
        // Own group, so Ctrl-C on the host terminal reaches us, not QEMU mid-write.
        if (own_group) ::setpgid(0, 0);
        // QEMU dies with us, even when we are SIGKILLed.
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        if (own_group) ::dup2(devnull.get(), 0);
        if (own_group) ::dup2(err.get(), 1);
        ::dup2(err.get(), 2);
        ::execvp(args[0], args.data());
        dprintf(err.get(), "cannot run %s: %s\n", args[0], strerror(errno));
        ::_exit(127);
    }
    q.pid = pid;
    q.pidfd.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    if (!q.pidfd) throw_errno("cannot open pidfd for qemu");
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
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

// One connection per port; data is read as it comes.
struct Channel {
    Fd listener;
    Fd conn;
    bool eof = false;
};

class VmSession {
public:
    VmSession(const VmSpec& spec, const protocol::Job& job) : spec_(spec), job_(job) {}
    VmResult run();

private:
    void open_channels();
    void loop();
    void handle_control_line(const std::string& line);
    void on_readable(Channel& ch, int index);
    double deadline_ms() const;
    void finish_outcome();

    const VmSpec& spec_;
    const protocol::Job& job_;
    TempDir dir_{"ktstr-vm"};
    Channel channels_[3];  // ctl, out, err
    std::string control_buf_;
    Qemu qemu_;
    VmResult result_;
    Clock::time_point t0_ = Clock::now();
    bool hello_ = false, verdict_ = false, qemu_exited_ = false, interrupted_ = false;
    bool timed_out_ = false;
    double verdict_ms_ = 0, exit_ms_ = 0;
};

void VmSession::open_channels() {
    const char* names[] = {"ctl.sock", "out.sock", "err.sock"};
    for (int i = 0; i < 3; ++i) channels_[i].listener = listen_unix(dir_.path() / names[i]);
}

double VmSession::deadline_ms() const {
    if (qemu_exited_) return exit_ms_ + 2000;  // draining what the sockets still hold
    if (verdict_) return verdict_ms_ + kShutdownGraceS * 1000;
    if (!hello_) return spec_.boot_timeout_s * 1000;
    if (job_.timeout_s <= 0) return -1;
    return result_.ms_to_hello + (job_.timeout_s + kRunMarginS) * 1000;
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
        auto text = nlohmann::json(job_).dump() + "\n";
        write_all(channels_[0].conn.get(), text.data(), text.size(), "job to the guest");
    } else if (type == "verdict" && !verdict_) {
        verdict_ = true;
        verdict_ms_ = ms_since(t0_);
        result_.verdict = msg.get<protocol::Verdict>();
    } else if (type == "log") {
        log(LogLevel::Debug, "guest: {}", msg.value("text", ""));
    }
}

void VmSession::on_readable(Channel& ch, int index) {
    char buf[65536];
    ssize_t n = ::read(ch.conn.get(), buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
    if (n <= 0) {
        ch.eof = true;
        return;
    }
    if (index == 0) {
        control_buf_.append(buf, static_cast<size_t>(n));
        size_t nl;
        while ((nl = control_buf_.find('\n')) != std::string::npos) {
            handle_control_line(control_buf_.substr(0, nl));
            control_buf_.erase(0, nl + 1);
        }
        return;
    }
    int out = index == 1 ? spec_.stdout_fd : spec_.stderr_fd;
    if (out >= 0) {
        try {
            write_all(out, buf, static_cast<size_t>(n), "guest output");
        } catch (const SysError& e) {
            log(LogLevel::Warn, "{}; dropping the rest of that stream", e.what());
            if (index == 1) const_cast<VmSpec&>(spec_).stdout_fd = -1;
        }
    }
}

void VmSession::loop() {
    std::optional<HostSignals> own_signals;
    if (spec_.cancel_fd < 0) own_signals.emplace();
    int stop_fd = own_signals ? own_signals->fd() : spec_.cancel_fd;
    QemuConfig qc;
    qc.kernel = spec_.kernel.image;
    qc.initramfs = spec_.initramfs;
    qc.accel = spec_.accel.accel;
    qc.topology = spec_.topology;
    qc.memory_mb = spec_.memory_mb;
    qc.cmdline_extra = spec_.cmdline_extra;
    qc.console_log = dir_.path() / "console.log";
    qc.console_on_stdio = spec_.interactive;
    qc.control_socket = dir_.path() / "ctl.sock";
    qc.stdout_socket = dir_.path() / "out.sock";
    qc.stderr_socket = dir_.path() / "err.sock";
    qc.verbose = spec_.verbose;
    auto argv = qemu_argv(qc);
    std::string shown;
    for (const auto& a : argv) shown += " " + a;
    log(LogLevel::Debug, "running{}", shown);
    start_qemu(qemu_, argv, dir_.path() / "qemu.stderr", !spec_.interactive);

    for (;;) {
        std::vector<pollfd> fds;
        std::vector<int> who;  // 0..2 channel conn, 10..12 listener, 20 qemu, 21 signals
        for (int i = 0; i < 3; ++i) {
            auto& ch = channels_[i];
            if (ch.conn && !ch.eof) fds.push_back({ch.conn.get(), POLLIN, 0}), who.push_back(i);
            else if (!ch.conn) fds.push_back({ch.listener.get(), POLLIN, 0}), who.push_back(10 + i);
        }
        if (!qemu_exited_) fds.push_back({qemu_.pidfd.get(), POLLIN, 0}), who.push_back(20);
        if (!interrupted_) fds.push_back({stop_fd, POLLIN, 0}), who.push_back(21);

        bool all_eof = std::all_of(std::begin(channels_), std::end(channels_),
                                   [](const Channel& c) { return !c.conn || c.eof; });
        if (qemu_exited_ && all_eof) return;

        double deadline = deadline_ms();
        int wait_ms = deadline < 0 ? -1 : std::max(0, int(deadline - ms_since(t0_)) + 1);
        int n = ::poll(fds.data(), fds.size(), wait_ms);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw_errno("cannot poll the VM's channels");
        if (n == 0) {
            if (qemu_exited_) return;  // drained long enough
            timed_out_ = true;
            qemu_.kill_now();
            qemu_.reap();
            qemu_exited_ = true;
            exit_ms_ = ms_since(t0_);
            continue;
        }
        for (size_t i = 0; i < fds.size(); ++i) {
            if (!fds[i].revents) continue;
            int w = who[i];
            if (w < 3) {
                on_readable(channels_[w], w);
            } else if (w < 20) {
                auto& ch = channels_[w - 10];
                ch.conn.reset(::accept4(ch.listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
            } else if (w == 20) {
                qemu_.reap();
                qemu_exited_ = true;
                exit_ms_ = ms_since(t0_);
            } else {
                if (own_signals) {
                    signalfd_siginfo si{};
                    if (::read(stop_fd, &si, sizeof si) > 0)
                        log(LogLevel::Warn, "got signal {}; stopping the VM", si.ssi_signo);
                }
                interrupted_ = true;
                qemu_.kill_now();
            }
        }
    }
}

void VmSession::finish_outcome() {
    auto console = read_file(dir_.path() / "console.log");
    result_.console_tail = tail_lines(console, 40);
    bool panic = console.find("Kernel panic - not syncing") != std::string::npos;
    result_.ms_total = ms_since(t0_);
    result_.ms_qemu_exit = exit_ms_;
    if (interrupted_) {
        result_.outcome = Outcome::Interrupted;
        result_.reason = "interrupted on the host";
    } else if (verdict_) {
        result_.outcome = Outcome::Verdict;
        if (timed_out_) log(LogLevel::Warn, "guest did not power off after its verdict");
    } else if (panic) {
        result_.outcome = Outcome::KernelPanic;
        auto at = console.find("Kernel panic - not syncing");
        result_.reason = "kernel panic" + std::string(hello_ ? "" : " before the guest's hello") +
                         ": " + console.substr(at, console.find('\n', at) - at);
    } else if (timed_out_ && !hello_) {
        result_.outcome = Outcome::BootTimeout;
        result_.reason = fmt::format(
            "no hello from the guest within {:.0f} s (boot hang, wrong kernel, or an "
            "accelerator that cannot run it; accel: {})",
            spec_.boot_timeout_s, spec_.accel.accel == Accel::Kvm ? "kvm" : "tcg");
    } else if (timed_out_) {
        result_.outcome = Outcome::RunTimeout;
        result_.reason = fmt::format("no verdict within {:.0f} s of the guest's hello",
                                     job_.timeout_s + kRunMarginS);
    } else if (!hello_) {
        result_.outcome = Outcome::QemuFailed;
        auto err = read_file(dir_.path() / "qemu.stderr");
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
    finish_outcome();
    return result_;
}

}  // namespace

const char* outcome_name(Outcome o) {
    switch (o) {
        case Outcome::Verdict: return "verdict";
        case Outcome::BootTimeout: return "boot timeout";
        case Outcome::RunTimeout: return "run timeout";
        case Outcome::KernelPanic: return "kernel panic";
        case Outcome::QemuFailed: return "qemu failed";
        case Outcome::NoVerdict: return "no verdict";
        case Outcome::Interrupted: return "interrupted";
    }
    return "?";
}

int VmResult::exit_code() const {
    if (outcome == Outcome::Interrupted) return 130;
    if (outcome != Outcome::Verdict) return 125;
    if (verdict.timed_out) return 124;
    if (verdict.signal) return 128 + *verdict.signal;
    if (verdict.exit_code) return *verdict.exit_code;
    return 125;
}

VmResult run_vm(const VmSpec& spec, const protocol::Job& job) {
    VmSpec s = spec;
    if (s.boot_timeout_s <= 0) s.boot_timeout_s = s.accel.accel == Accel::Kvm ? 30 : 120;
    VmResult r = VmSession(s, job).run();
    if (r.early_panic()) {
        log(LogLevel::Warn, "{}; an infrastructure failure, retrying once", r.reason);
        r = VmSession(s, job).run();
        r.boot_attempts = 2;
    }
    return r;
}

}  // namespace ktstr
