// The guest's PID 1: mount, prepare, run, report, power off.
//
// The host talks to it over three serial ports (ktstr/protocol.hpp): init says hello and gets
// the job on the control port, the command's stdout and stderr go through pipes init copies
// onto the other two, and the verdict goes back on the control port. PID 1 must never return
// or exit (the kernel would panic), so every path, failures included, ends in power_off().
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "ktstr/error.hpp"
#include "ktstr/fd.hpp"
#include "ktstr/payload_run.hpp"
#include "ktstr/protocol.hpp"

namespace {

namespace protocol = ktstr::protocol;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using ktstr::Error;
using ktstr::Fd;
using ktstr::ms_until;
using ktstr::Pipe;
using ktstr::quoted;
using ktstr::throw_errno;

// --- Console log: one line per event; quiet unless the job asks for more -------------------

enum class Level { error, warn, info };

struct Console {
    int fd = 2;  // until /dev/console is opened; may be closed when the initramfs has none
    std::optional<bool> verbose;  // unknown until the job arrives
    std::string held;             // info lines from before that, shown if it says verbose
} console;

void write_console(const std::string& text) {
    (void)!::write(console.fd, text.data(), text.size());
}

double boottime_ms() {
    timespec now{};
    ::clock_gettime(CLOCK_BOOTTIME, &now);
    return double(now.tv_sec) * 1e3 + double(now.tv_nsec) / 1e6;
}

void say(Level level, const std::string& text) {
    static constexpr const char* names[] = {"error", "warn", "info"};
    // The guest's boot time in seconds, as the kernel stamps its own lines, so -v shows where
    // init's time goes.
    char stamp[32];
    std::snprintf(stamp, sizeof stamp, "[%12.6f] ", boottime_ms() / 1000);
    std::string line = stamp + std::string("ktstr-init: ") + names[int(level)] + ": " + text + "\n";
    if (level != Level::info) return write_console(line);
    if (!console.verbose)
        console.held += line;
    else if (*console.verbose)
        write_console(line);
}

void set_verbose(bool verbose) {
    console.verbose = verbose;
    if (verbose) write_console(console.held);
    console.held.clear();
}

// The kernel opens /dev/console as fds 0-2 only if the initramfs has that node; otherwise
// they are closed and the first files we open would land there.
void attach_console() {
    int fd = ::open("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) return;
    for (int std_fd = 0; std_fd < 3; ++std_fd) {
        if (::fcntl(std_fd, F_GETFD) < 0) ::dup2(fd, std_fd);
    }
    console.fd = fd;
}

// --- Mount -------------------------------------------------------------------------------

struct Mount {
    const char* source;
    const char* target;
    const char* type;
    unsigned long flags;
    const char* options;
    bool essential;  // nothing works without it
    // Left as the initramfs has it when the archive put files there: a program or library packed
    // at a host path under /tmp must stay visible. The rootfs is writable either way.
    bool unless_packed = false;
};

constexpr unsigned long kNoDevExec = MS_NOSUID | MS_NODEV | MS_NOEXEC;
constexpr Mount kMounts[] = {
    {"proc", "/proc", "proc", kNoDevExec, nullptr, true},
    {"sysfs", "/sys", "sysfs", kNoDevExec, nullptr, true},
    {"devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755", true},
    {"devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "mode=0620,ptmxmode=0666", false},
    {"tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", false},
    {"tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", false, true},
    {"tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755", false, true},
    {"cgroup2", "/sys/fs/cgroup", "cgroup2", kNoDevExec, nullptr, false},
    {"bpf", "/sys/fs/bpf", "bpf", kNoDevExec, "mode=0700", false},
};

void mount_one(const Mount& m) {
    if (::mkdir(m.target, 0755) != 0 && errno != EEXIST)
        throw_errno("cannot create mount point " + quoted(m.target));
    // EBUSY: already mounted (the kernel may have mounted devtmpfs itself).
    if (::mount(m.source, m.target, m.type, m.flags, m.options) != 0 && errno != EBUSY)
        throw_errno("cannot mount " + std::string(m.type) + " on " + quoted(m.target));
}

bool has_entries(const char* path) {
    DIR* dir = ::opendir(path);
    if (!dir) return false;
    bool found = false;
    while (const dirent* e = ::readdir(dir)) {
        if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
            found = true;
            break;
        }
    }
    ::closedir(dir);
    return found;
}

void mount_filesystems() {
    for (const Mount& m : kMounts) {
        if (m.unless_packed && has_entries(m.target)) {
            say(Level::info,
                std::string("kept ") + m.target + " as packed: the initramfs has files there");
            continue;
        }
        try {
            mount_one(m);
            say(Level::info, "mounted " + std::string(m.type) + " on " + m.target);
        } catch (const Error& e) {
            if (m.essential) throw;
            say(Level::error, e.what());
        }
    }
}

// --- Ports to the host -------------------------------------------------------------------

struct Ports {
    Fd ctl;
    Fd out;
    Fd err;
};

// Raw: bytes pass as they are, with no echo, no line editing and no flow control characters;
// a read returns as soon as one byte has come.
Fd open_port(const char* device, int flags) {
    Fd fd = Fd::open(device, flags | O_NOCTTY);
    termios t{};
    if (::tcgetattr(fd.get(), &t) != 0)
        throw_errno("cannot read the settings of " + quoted(device));
    ::cfmakeraw(&t);
    t.c_cflag |= CLOCAL | CREAD;
    t.c_cflag &= ~tcflag_t(CRTSCTS);
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    if (::tcsetattr(fd.get(), TCSANOW, &t) != 0) throw_errno("cannot set up " + quoted(device));
    return fd;
}

// The nodes come from devtmpfs, which makes them in its own thread; by the time init runs
// they are there, but nothing promises it, so look again for a bounded time.
Ports open_ports() {
    for (auto until = Clock::now() + 10s;; std::this_thread::sleep_for(10ms)) {
        bool all = true;
        for (const char* device :
             {protocol::kControlPort, protocol::kStdoutPort, protocol::kStderrPort})
            all = all && ::access(device, F_OK) == 0;
        if (all || Clock::now() >= until) break;
    }
    Ports ports;
    ports.ctl = open_port(protocol::kControlPort, O_RDWR);
    ports.out = open_port(protocol::kStdoutPort, O_WRONLY);
    ports.err = open_port(protocol::kStderrPort, O_WRONLY);
    say(Level::info, std::string("ports ") + protocol::kControlPort + ", " + protocol::kStdoutPort +
                         ", " + protocol::kStderrPort);
    return ports;
}

// Until the UART has sent every byte written to `port`, not only handed it to the device:
// tcdrain() alone stops waiting after a few FIFO times, while QEMU may still hold bytes the
// host has not read yet. Bounded, so a host that stopped reading cannot keep the guest up.
void wait_sent(int port) {
    ::tcdrain(port);
    for (auto until = Clock::now() + 30s; Clock::now() < until;) {
        int lsr = 0;
        if (::ioctl(port, TIOCSERGETLSR, &lsr) != 0 || (lsr & TIOCSER_TEMT)) return;
        std::this_thread::sleep_for(1ms);
    }
    say(Level::warn, "a port still had bytes to send after 30 s: the host stopped reading");
}

// The command's stdout or stderr: a pipe whose bytes init copies onto a port. Not the port
// itself: a command whose output is a terminal behaves differently (colour, progress lines,
// line buffering).
class Relay {
  public:
    Relay(const char* port_name, int port, const char* stream)
        : name_(std::string(port_name) + " (the command's " + stream + ")"),
          port_(port),
          pipe_(Pipe::make()) {
        ktstr::set_nonblocking(pipe_.read, "the pipe for " + name_);
    }
    int write_end() const { return pipe_.write.get(); }
    void close_write_end() { pipe_.write.reset(); }
    int read_end() const { return pipe_.read ? pipe_.read.get() : -1; }
    bool open() const { return bool(pipe_.read); }

    // Copies one chunk, so the caller's loop gets back to the command's end and its deadline
    // however fast the command writes; closes the pipe at end of file. True if bytes came.
    bool pump() {
        char buf[65536];
        ssize_t n;
        do {
            n = ::read(pipe_.read.get(), buf, sizeof buf);
        } while (n < 0 && errno == EINTR);
        if (n < 0 && errno == EAGAIN) return false;
        if (n <= 0) {
            pipe_.read.reset();
            return false;
        }
        forward(buf, static_cast<size_t>(n));
        return true;
    }

    // The pipe ended early: a process no SIGKILL ended (stuck in the kernel) still holds it.
    void abandon() {
        say(Level::warn, name_ + ": a process still holds the pipe; the rest is dropped");
        pipe_.read.reset();
    }

    void flush() const {
        if (!failed_) wait_sent(port_);
    }

  private:
    void forward(const char* data, size_t n) {
        if (failed_) return;  // keep reading, so the command never blocks on a full pipe
        try {
            ktstr::write_all(port_, data, n, name_);
        } catch (const std::exception& e) {
            failed_ = true;
            say(Level::error, std::string(e.what()) + "; dropping the rest of the output");
        }
    }

    std::string name_;
    int port_;
    Pipe pipe_;
    bool failed_ = false;
};

// With `drained`, returns once the port has sent the line: the last one, the verdict, must be
// out before the power goes off. The lines before it need not wait (the port keeps their
// order), and under TCG each wait costs milliseconds.
void send_line(int fd, const nlohmann::json& message, bool drained = false) {
    auto line = message.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    ktstr::write_all(fd, line.data(), line.size(), protocol::kControlPort);
    if (drained) wait_sent(fd);
}

// Byte by byte: the job is one short line, and nothing after it may be taken from the port.
std::string read_line(int fd) {
    std::string line;
    for (char c;;) {
        ssize_t n = ::read(fd, &c, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw_errno("cannot read control port");
        if (n == 0) throw Error("cannot read job: the host closed the control port");
        if (c == '\n') return line;
        line.push_back(c);
    }
}

protocol::Job parse_job(const std::string& text, const char* from) {
    auto message = nlohmann::json::parse(text, nullptr, false);
    if (message.is_discarded() || !message.is_object() || message.value("type", "") != "job")
        throw Error(std::string("cannot read the job: ") + from + " holds no {\"type\":\"job\"}");
    return message.get<protocol::Job>();
}

// The job from the kernel command line, taken out of init's environment so that the command
// does not inherit it; nullopt when the host sends it on the control port instead.
std::optional<std::string> job_from_cmdline() {
    const char* word = ::getenv(protocol::kJobWord);
    if (!word) return std::nullopt;
    auto json = protocol::base64_decode(word);
    ::unsetenv(protocol::kJobWord);
    if (!json)
        throw Error(std::string("cannot read the job: ") + protocol::kJobWord +
                    " on the kernel command line is not base64");
    return json;
}

protocol::Job read_job(int ctl, const std::optional<std::string>& from_cmdline) {
    if (from_cmdline) return parse_job(*from_cmdline, "the kernel command line");
    return parse_job(read_line(ctl), "the host's line on the control port");
}

// --- Prepare -----------------------------------------------------------------------------

void set_env(const std::string& name, const std::string& value) {
    if (::setenv(name.c_str(), value.c_str(), 1) != 0)
        throw_errno("cannot set environment variable " + quoted(name));
}

// The job's environment comes last, so it may override PATH, HOME and TERM.
void prepare_environment(const protocol::Job& job) {
    set_env("PATH", job.path.empty() ? "/include-files:/bin:/sbin:/usr/bin:/usr/sbin" : job.path);
    set_env("HOME", "/tmp");
    set_env("TERM", "linux");
    set_env("KTSTR_RESULT_FILE", protocol::kResultFile);
    for (const auto& [name, value] : job.env) set_env(name, value);
    say(Level::info, std::string("PATH=") + ::getenv("PATH"));
}

// SIGCHLD is blocked and read from a signalfd, so the wait loop sleeps in one poll.
class ChildDeaths {
  public:
    ChildDeaths() {
        sigset_t chld;
        sigemptyset(&chld);
        sigaddset(&chld, SIGCHLD);
        if (::sigprocmask(SIG_BLOCK, &chld, nullptr) != 0) throw_errno("cannot block SIGCHLD");
        fd_.reset(::signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC));
        if (!fd_) throw_errno("cannot open signalfd for SIGCHLD");
    }
    int fd() const { return fd_.get(); }
    void drain() {
        signalfd_siginfo info;
        while (::read(fd_.get(), &info, sizeof info) == sizeof info) {
        }
    }

  private:
    Fd fd_;
};

// --- Run ---------------------------------------------------------------------------------

// As PID 1 we inherit every orphan; reap each as it dies. The leader's status belongs to its
// handle (reaped by pid), so WNOWAIT looks at a dead child's pid before collecting it.
void reap_orphans(pid_t leader) {
    for (;;) {
        siginfo_t info{};
        if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0) return;
        if (info.si_pid == 0 || info.si_pid == leader) return;
        ::waitpid(info.si_pid, nullptr, WNOHANG);
    }
}

// The command's stdout and stderr, on their way to the host.
struct CommandOutput {
    Relay out;
    Relay err;
    explicit CommandOutput(const Ports& ports)
        : out(protocol::kStdoutPort, ports.out.get(), "stdout"),
          err(protocol::kStderrPort, ports.err.get(), "stderr") {}

    // Once every process is gone: the rest of both pipes, then until the ports have sent it
    // all. A pipe still open after 2 s without a byte is held by a process no SIGKILL ended.
    void finish() {
        out.close_write_end();  // still ours if the command never started
        err.close_write_end();
        for (auto idle_until = Clock::now() + 2s; out.open() || err.open();) {
            if (Clock::now() >= idle_until) {
                if (out.open()) out.abandon();
                if (err.open()) err.abandon();
                break;
            }
            pollfd fds[] = {{out.read_end(), POLLIN, 0}, {err.read_end(), POLLIN, 0}};
            if (::poll(fds, 2, ms_until(idle_until)) <= 0) continue;
            bool came = false;
            if (fds[0].revents) came |= out.pump();
            if (fds[1].revents) came |= err.pump();
            if (came) idle_until = Clock::now() + 2s;
        }
        out.flush();
        err.flush();
    }
};

// Until the command's leader ends, copying its output as it comes and reaping orphans.
ktstr::PayloadExit wait_reaping(ktstr::PayloadHandle& payload, ChildDeaths& deaths,
                                CommandOutput& output) {
    for (;;) {
        if (auto exit = payload.try_wait()) return *exit;  // also kills at the deadline
        pollfd fds[] = {{payload.pidfd(), POLLIN, 0},
                        {deaths.fd(), POLLIN, 0},
                        {output.out.read_end(), POLLIN, 0},
                        {output.err.read_end(), POLLIN, 0}};
        if (::poll(fds, 4, ms_until(payload.deadline())) < 0 && errno != EINTR)
            throw_errno("cannot wait for the command");
        if (fds[2].revents) output.out.pump();
        if (fds[3].revents) output.err.pump();
        deaths.drain();
        reap_orphans(payload.pid());
    }
}

std::chrono::milliseconds timeout_of(const protocol::Job& job) {
    if (job.timeout_s <= 0) return 0ms;
    const double ms = std::min(job.timeout_s, 1e9) * 1000;  // capped: llround cannot overflow
    return std::max(1ms, std::chrono::milliseconds(std::llround(ms)));
}

ktstr::PayloadRun command_payload(const protocol::Job& job, const CommandOutput& output) {
    return ktstr::PayloadRun("/bin/sh")
        .args({"-c", job.command})
        .stdout_to(ktstr::Output::to_fd(output.out.write_end()))
        .stderr_to(ktstr::Output::to_fd(output.err.write_end()))
        .timeout(timeout_of(job));
}

// Job control needs a controlling terminal, which /dev/console cannot be: the serial port
// behind it (console=ttyS0) is.
Fd open_terminal() {
    return Fd::open("/dev/ttyS0", O_RDWR | O_NOCTTY);
}

// Piped input read as a script: lines as they are, only ^D (end of input) special, no echo.
// Init keeps the terminal open, so what the host sends from now on waits in its buffer.
void make_script_input(int tty) {
    termios t{};
    if (::tcgetattr(tty, &t) != 0) throw_errno("cannot read the settings of /dev/ttyS0");
    t.c_iflag &= ~tcflag_t(ICRNL | INLCR | IGNCR | IXON | IXOFF | ISTRIP | BRKINT);
    t.c_lflag &= ~tcflag_t(ECHO | ECHOE | ECHOK | ECHONL | ISIG | IEXTEN);
    t.c_lflag |= ICANON;
    for (int c : {VERASE, VKILL, VEOL, VEOL2}) t.c_cc[c] = _POSIX_VDISABLE;
    if (::tcsetattr(tty, TCSANOW, &t) != 0) throw_errno("cannot set up /dev/ttyS0 for input");
}

ktstr::PayloadRun shell_payload(const protocol::Job& job, const CommandOutput& output, int tty) {
    if (!job.script_input)
        return ktstr::PayloadRun("/bin/sh").controlling_terminal(tty).timeout(timeout_of(job));
    make_script_input(tty);
    protocol::Job script = job;
    script.command = "exec /bin/sh -s </dev/ttyS0";
    return command_payload(script, output);
}

// A shell on the terminal takes keys safely once its line editor reads the terminal (canonical
// mode off): by then it catches or ignores SIGINT, SIGQUIT and SIGTSTP. A key that came sooner
// would raise the signal before that and end the shell, and what came before it would echo
// twice. So the host hears "started" only then (or when the shell ended, or after this long).
constexpr auto kShellReadingMax = 20s;

void wait_shell_reading(int tty, ktstr::PayloadHandle& shell) {
    auto since = Clock::now();
    for (auto until = since + kShellReadingMax; Clock::now() < until;) {
        termios t{};
        if (::tcgetattr(tty, &t) != 0) return;  // a terminal gone: the shell ends with it
        if (!(t.c_lflag & ICANON)) {
            auto ms = std::chrono::duration<double, std::milli>(Clock::now() - since).count();
            return say(Level::info, "the shell reads its terminal after " +
                                        std::to_string(std::lround(ms)) + " ms");
        }
        pollfd ended{shell.pidfd(), POLLIN, 0};
        if (::poll(&ended, 1, 5) > 0) return;  // its verdict says why
    }
    say(Level::warn, "the shell has not read its terminal yet; passing keys to it anyway");
}

protocol::Verdict run_job(const protocol::Job& job, const Ports& ports, CommandOutput& output,
                          ChildDeaths& deaths) {
    protocol::Verdict verdict;
    auto started = Clock::now();
    verdict.ms_payload_start = boottime_ms();
    try {
        Fd terminal = job.interactive ? open_terminal() : Fd();
        auto run = job.interactive ? shell_payload(job, output, terminal.get())
                                   : command_payload(job, output);
        say(Level::info, job.interactive ? "starting a shell" : "running: " + job.command);
        auto payload = run.spawn();
        output.out.close_write_end();  // the command's processes hold the only ones now
        output.err.close_write_end();
        if (job.interactive && !job.script_input) wait_shell_reading(terminal.get(), payload);
        send_line(ports.ctl.get(), {{"type", "started"}});
        auto exit = wait_reaping(payload, deaths, output);
        verdict.exit_code = exit.exit_code;
        verdict.signal = exit.signal;
        verdict.timed_out = exit.timed_out;
        say(Level::info, "command " + exit.describe());
    } catch (const std::exception& e) {
        verdict.error = e.what();
        say(Level::error, verdict.error);
    }
    verdict.ms_command = std::chrono::duration<double, std::milli>(Clock::now() - started).count();
    verdict.ms_payload_end = boottime_ms();
    return verdict;
}

// Nothing the command started may outlive it. As PID 1, kill(-1) reaches every process but us;
// SIGSTOP first makes the list of what was left complete, since a stopped process cannot fork.
// Returns "pid (name)" of each process the kill reached.
std::vector<std::string> end_all_processes(ChildDeaths& deaths) {
    // Every process the command started descends from init, and an orphan becomes init's
    // child: no child at all means nothing is left, and the scan of /proc is skipped.
    siginfo_t info{};
    if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0 && errno == ECHILD) return {};
    ::kill(-1, SIGSTOP);
    std::vector<std::string> left;
    for (const auto& p : ktstr::process_table())
        if (!p.kernel_thread && p.pid != 1 && p.alive())
            left.push_back(std::to_string(p.pid) + " (" + p.name + ")");
    if (::kill(-1, SIGKILL) != 0 && errno != ESRCH)
        say(Level::error, std::string("cannot kill leftover processes: ") + std::strerror(errno));

    for (auto until = Clock::now() + 2s;;) {
        pid_t reaped;
        while ((reaped = ::waitpid(-1, nullptr, WNOHANG)) > 0) {
        }
        if (reaped < 0 && errno == ECHILD) break;
        if (Clock::now() >= until) {
            say(Level::warn, "processes still alive 2 s after SIGKILL");
            break;
        }
        pollfd fd{deaths.fd(), POLLIN, 0};
        ::poll(&fd, 1, ms_until(until));
        deaths.drain();
    }
    if (!left.empty()) say(Level::info, std::to_string(left.size()) + " left running, killed");
    return left;
}

// --- Report and power off ----------------------------------------------------------------

[[noreturn]] void power_off() {
    say(Level::info, "powering off");
    ::sync();
    ::reboot(RB_POWER_OFF);
    say(Level::error, std::string("cannot power off: ") + std::strerror(errno));
    for (;;) ::pause();
}

// Init failed outside the command: say so on the console and, if we can, to the host. The
// steps so far are shown too when the failure came before the job.
void report_failure(const std::string& what, const Ports& ports, double boot_ms) noexcept {
    if (!console.verbose) set_verbose(true);
    say(Level::error, what);
    if (!ports.ctl) return;
    try {
        protocol::Verdict verdict;
        verdict.error = what;
        verdict.ms_boot_to_init = boot_ms;
        send_line(ports.ctl.get(), verdict, true);
    } catch (const std::exception& e) {
        say(Level::error, e.what());
    }
}

void run_init(double boot_ms, Ports& ports) {
    ChildDeaths deaths;
    mount_filesystems();
    attach_console();

    ports = open_ports();
    send_line(ports.ctl.get(), protocol::Hello{.ms_init = boot_ms, .ms_sent = boottime_ms()});
    const auto job_word = job_from_cmdline();  // after the hello: a failure reaches the host
    say(Level::info, job_word ? "hello sent; the job came on the kernel command line"
                              : "hello sent, waiting for the job");
    protocol::Job job = read_job(ports.ctl.get(), job_word);
    set_verbose(job.verbose);
    say(Level::info, "job received; booted in " + std::to_string(std::llround(boot_ms)) + " ms");

    prepare_environment(job);
    CommandOutput output(ports);
    protocol::Verdict verdict = run_job(job, ports, output, deaths);
    verdict.leftover = end_all_processes(deaths);
    output.finish();  // the command's last bytes reach the host before the verdict does
    // What a test body left for the host (see protocol.hpp).
    verdict.test_result = ktstr::read_file_if_present(protocol::kResultFile).value_or("");

    verdict.ms_boot_to_init = boot_ms;
    send_line(ports.ctl.get(), verdict, true);
    say(Level::info, "verdict sent");
}

}  // namespace

int main() {
    const double boot_ms = boottime_ms();
    Ports ports;
    try {
        run_init(boot_ms, ports);
    } catch (const std::exception& e) {
        report_failure(e.what(), ports, boot_ms);
    } catch (...) {
        report_failure("unknown failure", ports, boot_ms);
    }
    power_off();
}
