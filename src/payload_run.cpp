// Spawning uses plain fork/exec rather than Boost.Process: the child must set its process
// group and join a cgroup before exec, and the static PID 1 must not depend on Boost.
#include "ktstr/payload_run.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string_view>

#include "ktstr/error.hpp"
#include "ktstr/fd.hpp"
#include "payload_cgroup.hpp"
#include "payload_child.hpp"

namespace ktstr {
namespace {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using namespace std::chrono_literals;

// How long a kill waits for the cgroup to freeze, and for everything it reached to end.
constexpr auto kFreezeBound = 2s;
constexpr auto kKillBound = 5s;

// --- Small pieces for the parent ------------------------------------------------------------

Fd stdin_with_bytes(const std::string& bytes) {
    // A memfd, not a pipe: the child reads it at its own pace and nobody can get SIGPIPE.
    int fd = ::memfd_create("ktstr-payload-stdin", MFD_CLOEXEC);
    if (fd < 0) throw_errno("cannot create payload stdin");
    Fd file(fd);
    write_all(file.get(), bytes.data(), bytes.size(), "payload stdin");
    if (::lseek(file.get(), 0, SEEK_SET) < 0) throw_errno("cannot rewind payload stdin");
    return file;
}

Fd open_pidfd(pid_t pid) {
    int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (fd < 0) throw_errno("cannot open pidfd of payload " + std::to_string(pid));
    return Fd(fd);
}

std::optional<TimePoint> earliest(std::optional<TimePoint> a, std::optional<TimePoint> b) {
    if (!a) return b;
    if (!b) return a;
    return std::min(*a, *b);
}

PayloadExit decode_status(int status, bool timed_out) {
    PayloadExit exit;
    if (WIFEXITED(status)) exit.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) exit.signal = WTERMSIG(status);
    exit.timed_out = timed_out;
    return exit;
}

}  // namespace

// --- PayloadExit ----------------------------------------------------------------------------

std::string PayloadExit::describe() const {
    std::string how = "still running";
    if (exit_code) how = "exited with code " + std::to_string(*exit_code);
    if (signal) {
        const char* name = ::sigdescr_np(*signal);
        how = "killed by signal " + std::to_string(*signal) + " (" + (name ? name : "?") + ")";
    }
    return timed_out ? "timed out, " + how : how;
}

// --- PayloadHandle::State: one running payload ----------------------------------------------

struct PayloadHandle::State {
    std::string name;
    pid_t pid = -1;
    pid_t pgid = -1;
    bool own_group = true;
    Fd pidfd;
    Fd out;  // read ends of the capture pipes, closed at end of file
    Fd err;
    CapturedOutput out_bytes;
    CapturedOutput err_bytes;
    std::size_t capture_limit = 0;
    std::optional<TimePoint> deadline;
    std::chrono::milliseconds drain_bound{0};
    std::optional<std::filesystem::path> cgroup;
    TimePoint started;
    TimePoint ended;
    std::map<pid_t, Fd> reached;  // every process a kill reached, with a pidfd to see it end
    int escaped = 0;
    int survivors = 0;
    bool everything_killed = false;  // only the leader's zombie is left: nothing can fork
    bool timed_out = false;
    bool output_held_open = false;
    std::optional<PayloadExit> exit;

    // SIGKILL to everything the payload started, counted exactly, and back only when all of
    // it has ended. Holding everything still first makes the count exact: a frozen cgroup and a
    // SIGSTOPped group cannot fork, so the members read next are all the kill will reach.
    void kill_everything() {
        bool frozen = cgroup && freeze_cgroup();
        try {
            if (!frozen && own_group) ::killpg(pgid, SIGSTOP);
            count_members(frozen);
            send_sigkill();
            await_end();
        } catch (...) {
            if (frozen) write_cgroup_file(*cgroup, "cgroup.freeze", "0");
            throw;
        }
        if (frozen) write_cgroup_file(*cgroup, "cgroup.freeze", "0");  // reusable for the next
        everything_killed = true;
    }

    // True once the kernel says the cgroup is frozen (bounded: a task stuck in the kernel
    // cannot freeze). False on kernels without cgroup.freeze too: the group is stopped instead.
    bool freeze_cgroup() {
        CgroupEvents events(*cgroup);
        if (!write_cgroup_file(*cgroup, "cgroup.freeze", "1")) return false;
        return events.await("frozen", '1', Clock::now() + kFreezeBound);
    }

    // With a frozen cgroup, its procs are the payload: the leader joined before exec and
    // every descendant inherits the cgroup. Otherwise the stopped group is read from /proc.
    void count_members(bool frozen) {
        if (cgroup) {
            for (pid_t member : read_cgroup_procs(*cgroup)) {
                auto entry = process_entry(member);
                if (note(member) && own_group && entry && entry->pgrp != pgid) ++escaped;
            }
        }
        if (frozen) return;
        if (!own_group) {
            note(pid);
            return;
        }
        for (const auto& p : process_table())
            if (p.pgrp == pgid) note(p.pid);
    }

    // Keeps a pidfd of a process still alive; true when it is newly counted.
    bool note(pid_t member) {
        if (reached.count(member)) return false;
        Fd fd(static_cast<int>(::syscall(SYS_pidfd_open, member, 0)));
        pollfd ended{fd.get(), POLLIN, 0};
        if (!fd || ::poll(&ended, 1, 0) != 0) return false;  // gone, or a zombie already
        reached.emplace(member, std::move(fd));
        return true;
    }

    void send_sigkill() {
        // Not yet: kernels before 5.14 have no cgroup.kill (false here); the pidfds below then
        // reach only the processes counted.
        if (cgroup) write_cgroup_file(*cgroup, "cgroup.kill", "1");
        if (own_group && ::killpg(pgid, SIGKILL) < 0 && errno != ESRCH)
            throw_errno("cannot kill process group " + std::to_string(pgid) + " of payload " +
                        quoted(name));
        // By pidfd, which cannot hit a recycled pid: those that left the group (setsid) and,
        // without cgroup.kill, the cgroup's members. The leader by pid too: it may not have
        // made its own group yet.
        for (const auto& [member, fd] : reached)
            ::syscall(SYS_pidfd_send_signal, fd.get(), SIGKILL, nullptr, 0);
        if (::kill(pid, SIGKILL) < 0 && errno != ESRCH)
            throw_errno("cannot kill payload " + quoted(name));
    }

    // Waits for every counted process to end (its pidfd turns readable at exit, reaped or
    // not) and for the cgroup to empty. Bounded, since a task stuck in the kernel cannot die:
    // those left then are reported as survivors rather than waited for forever.
    void await_end() {
        auto until = Clock::now() + kKillBound;
        std::vector<pollfd> waiting;
        for (const auto& [member, fd] : reached) waiting.push_back({fd.get(), POLLIN, 0});
        while (!waiting.empty() && Clock::now() < until) {
            if (::poll(waiting.data(), waiting.size(), ms_until(until)) < 0 && errno != EINTR)
                throw_errno("cannot wait for the processes of payload " + quoted(name));
            std::erase_if(waiting, [](const pollfd& p) { return p.revents != 0; });
        }
        survivors = static_cast<int>(waiting.size());
        if (cgroup && !CgroupEvents(*cgroup).await("populated", '0', until) && survivors == 0)
            survivors = static_cast<int>(read_cgroup_procs(*cgroup).size());
    }

    void kill() {
        if (!exit) kill_everything();
    }

    // The leader has exited but is not reaped: its zombie keeps the group id reserved, so
    // killpg cannot hit an unrelated group that reused the number.
    void finish() {
        if ((own_group || cgroup) && !everything_killed) kill_everything();

        int status = 0;
        while (::waitpid(pid, &status, 0) < 0) {
            if (errno != EINTR) throw_errno("cannot reap payload " + quoted(name));
        }
        ended = Clock::now();
        exit = decode_status(status, timed_out);
    }

    void keep(CapturedOutput& into, const char* data, std::size_t n) {
        std::size_t room = capture_limit - std::min(capture_limit, into.bytes.size());
        into.bytes.append(data, std::min(n, room));
        if (n > room) into.truncated = true;
    }

    // Reads what is there now, a bounded number of chunks so the caller gets to the leader.
    void read_from(Fd& pipe, CapturedOutput& into) {
        char chunk[65536];
        for (int round = 0; pipe && round < 16; ++round) {
            ssize_t n = ::read(pipe.get(), chunk, sizeof chunk);
            if (n > 0)
                keep(into, chunk, static_cast<std::size_t>(n));
            else if (n == 0)
                pipe.reset();
            else if (errno == EAGAIN)
                return;
            else if (errno != EINTR)
                throw_errno("cannot read output of payload " + quoted(name));
        }
    }

    // One poll over the leader's pidfd and the open pipes; true when the leader has exited.
    bool poll_once(int timeout_ms) {
        pollfd fds[3] = {{pidfd.get(), POLLIN, 0},
                         {out ? out.get() : -1, POLLIN, 0},
                         {err ? err.get() : -1, POLLIN, 0}};
        if (::poll(fds, 3, timeout_ms) < 0) {
            if (errno == EINTR) return false;
            throw_errno("cannot wait for payload " + quoted(name));
        }
        if (fds[1].revents) read_from(out, out_bytes);
        if (fds[2].revents) read_from(err, err_bytes);
        return fds[0].revents != 0;
    }

    std::optional<PayloadExit> wait_until(std::optional<TimePoint> until) {
        while (!exit) {
            if (deadline && Clock::now() >= *deadline) {
                deadline.reset();
                timed_out = true;
                kill();
            }
            if (poll_once(ms_until(earliest(until, deadline)))) {
                finish();
                break;
            }
            if (until && Clock::now() >= *until) return std::nullopt;
        }
        return exit;
    }

    // After finish(): the group is dead, so end of file comes at once unless a process
    // outside it holds a pipe; then stop at the bound rather than hang.
    void drain() {
        auto until = Clock::now() + drain_bound;
        while (out || err) {
            if (Clock::now() >= until) {
                output_held_open = true;
                break;
            }
            pollfd fds[2] = {{out ? out.get() : -1, POLLIN, 0}, {err ? err.get() : -1, POLLIN, 0}};
            int ready = ::poll(fds, 2, ms_until(until));
            if (ready < 0 && errno != EINTR)
                throw_errno("cannot read output of payload " + quoted(name));
            if (ready <= 0) continue;
            if (fds[0].revents) read_from(out, out_bytes);
            if (fds[1].revents) read_from(err, err_bytes);
        }
        out.reset();
        err.reset();
    }

    // Cleanup that must not throw: the destructor's and a failed spawn's.
    void abandon() noexcept {
        try {
            kill();
            if (!exit) finish();
        } catch (...) {
            ::kill(pid, SIGKILL);
            while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
            }
            exit = PayloadExit{};
        }
    }
};

// --- PayloadRun ----------------------------------------------------------------------------

PayloadRun::PayloadRun(std::string binary) : binary_(std::move(binary)) {}

PayloadRun& PayloadRun::arg(std::string a) {
    args_.push_back(std::move(a));
    return *this;
}
PayloadRun& PayloadRun::args(std::vector<std::string> as) {
    for (auto& a : as) args_.push_back(std::move(a));
    return *this;
}
PayloadRun& PayloadRun::clear_args() {
    args_.clear();
    return *this;
}
PayloadRun& PayloadRun::env(std::string name, std::string value) {
    env_changes_[std::move(name)] = std::move(value);
    return *this;
}
PayloadRun& PayloadRun::unset_env(std::string name) {
    env_changes_[std::move(name)] = std::nullopt;
    return *this;
}
PayloadRun& PayloadRun::clear_env() {
    inherit_env_ = false;
    env_changes_.clear();
    return *this;
}
PayloadRun& PayloadRun::working_dir(std::filesystem::path dir) {
    working_dir_ = std::move(dir);
    return *this;
}
PayloadRun& PayloadRun::stdin_null() {
    stdin_bytes_.reset();
    return *this;
}
PayloadRun& PayloadRun::stdin_bytes(std::string bytes) {
    stdin_bytes_ = std::move(bytes);
    return *this;
}
PayloadRun& PayloadRun::stdout_to(Output where) {
    stdout_ = where;
    return *this;
}
PayloadRun& PayloadRun::stderr_to(Output where) {
    stderr_ = where;
    return *this;
}
PayloadRun& PayloadRun::capture_limit(std::size_t bytes_per_stream) {
    capture_limit_ = bytes_per_stream;
    return *this;
}
PayloadRun& PayloadRun::timeout(std::chrono::milliseconds t) {
    timeout_ = t;
    return *this;
}
PayloadRun& PayloadRun::drain_bound(std::chrono::milliseconds t) {
    drain_bound_ = t;
    return *this;
}
PayloadRun& PayloadRun::cgroup(std::filesystem::path dir) {
    cgroup_ = std::move(dir);
    return *this;
}
PayloadRun& PayloadRun::uses_parent_pgrp(bool yes) {
    uses_parent_pgrp_ = yes;
    return *this;
}
PayloadRun& PayloadRun::controlling_terminal(int tty_fd) {
    terminal_fd_ = tty_fd;
    return *this;
}

PayloadReport PayloadRun::run() const {
    return spawn().wait_and_capture();
}

namespace {

// The descriptors the child gets as stdin, stdout and stderr; ours stay open until the fork.
struct Stdio {
    Fd input;
    Pipe out;
    Pipe err;
};

int child_end(const Output& where, Pipe& pipe) {
    switch (where.kind()) {
        case Output::Kind::captured:
            pipe = Pipe::make();
            return pipe.write.get();
        case Output::Kind::inherited:
            return -1;
        case Output::Kind::fd:
            return where.fd();
    }
    return -1;
}

}  // namespace

PayloadHandle PayloadRun::spawn() const {
    Environment env = payload_environment(inherit_env_, env_changes_);
    ChildPlan plan;
    plan.path = resolve_binary(binary_, env);
    plan.argv_storage.push_back(binary_);
    plan.argv_storage.insert(plan.argv_storage.end(), args_.begin(), args_.end());
    for (const auto& [name, value] : env) plan.envp_storage.push_back(name + "=" + value);
    plan.seal();
    if (working_dir_) plan.working_dir = working_dir_->string();

    Stdio io;
    if (terminal_fd_ >= 0) {
        plan.terminal_fd = terminal_fd_;
        plan.stdio[0] = plan.stdio[1] = plan.stdio[2] = terminal_fd_;
    } else {
        io.input = stdin_bytes_ ? stdin_with_bytes(*stdin_bytes_) : Fd::open("/dev/null", O_RDONLY);
        plan.stdio[0] = io.input.get();
        plan.stdio[1] = child_end(stdout_, io.out);
        plan.stdio[2] = child_end(stderr_, io.err);
    }
    plan.own_group = !uses_parent_pgrp_ || terminal_fd_ >= 0;

    Fd cgroup_procs;
    if (cgroup_) {
        cgroup_procs.reset(::open((*cgroup_ / "cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
        if (!cgroup_procs) throw_errno("cannot open cgroup " + quoted(cgroup_->string()));
        plan.cgroup_procs = cgroup_procs.get();
    }
    Pipe report = Pipe::make();
    plan.report_fd = report.write.get();

    auto started = Clock::now();
    pid_t pid = ::fork();
    if (pid < 0) throw_errno("cannot fork payload " + quoted(binary_));
    if (pid == 0) exec_child(plan);

    // From here the handle owns the child: any exception below kills and reaps it.
    auto state = std::make_unique<PayloadHandle::State>();
    state->name = binary_;
    state->pid = pid;
    state->own_group = plan.own_group;
    state->pgid = plan.own_group ? pid : ::getpgrp();
    state->started = started;
    PayloadHandle handle(std::move(state));
    PayloadHandle::State& s = *handle.s_;

    report.write.reset();
    io.out.write.reset();
    io.err.write.reset();
    if (auto failure = read_child_failure(report.read)) {
        std::string cgroup = cgroup_ ? cgroup_->string() : "";
        throw SysError(child_step_text(failure->step, plan, cgroup, binary_), failure->err);
    }

    s.pidfd = open_pidfd(pid);
    s.out = std::move(io.out.read);
    s.err = std::move(io.err.read);
    if (s.out) set_nonblocking(s.out, "payload output pipe");
    if (s.err) set_nonblocking(s.err, "payload output pipe");
    s.capture_limit = capture_limit_;
    s.drain_bound = drain_bound_;
    s.cgroup = cgroup_;
    if (timeout_.count() > 0) s.deadline = started + timeout_;
    return handle;
}

// --- PayloadHandle -------------------------------------------------------------------------

PayloadHandle::PayloadHandle(std::unique_ptr<State> s) : s_(std::move(s)) {}
PayloadHandle::PayloadHandle(PayloadHandle&&) noexcept = default;

PayloadHandle& PayloadHandle::operator=(PayloadHandle&& o) noexcept {
    if (this != &o) {
        PayloadHandle old(std::move(*this));
        s_ = std::move(o.s_);
    }
    return *this;
}

PayloadHandle::~PayloadHandle() {
    if (s_ && !s_->exit) s_->abandon();
}

pid_t PayloadHandle::pid() const noexcept {
    return s_->pid;
}
pid_t PayloadHandle::pgid() const noexcept {
    return s_->pgid;
}
int PayloadHandle::pidfd() const noexcept {
    return s_->pidfd.get();
}

std::optional<std::chrono::steady_clock::time_point> PayloadHandle::deadline() const noexcept {
    return s_->deadline;
}

PayloadExit PayloadHandle::wait() {
    return *s_->wait_until(std::nullopt);
}

std::optional<PayloadExit> PayloadHandle::wait_for(std::chrono::milliseconds limit) {
    return s_->wait_until(Clock::now() + limit);
}

std::optional<PayloadExit> PayloadHandle::try_wait() {
    return s_->wait_until(Clock::now());
}

void PayloadHandle::kill() {
    s_->kill();
}

PayloadExit PayloadHandle::terminate(std::chrono::milliseconds grace) {
    if (s_->exit) return *s_->exit;
    if (s_->own_group && ::killpg(s_->pgid, SIGTERM) < 0 && errno != ESRCH)
        throw_errno("cannot signal process group " + std::to_string(s_->pgid) + " of payload " +
                    quoted(s_->name));
    if (::kill(s_->pid, SIGTERM) < 0 && errno != ESRCH)
        throw_errno("cannot signal payload " + quoted(s_->name));
    if (auto exit = wait_for(grace)) return *exit;
    s_->kill();
    return wait();
}

PayloadReport PayloadHandle::wait_and_capture() {
    PayloadReport report;
    static_cast<PayloadExit&>(report) = wait();
    s_->drain();
    report.out = std::move(s_->out_bytes);
    report.err = std::move(s_->err_bytes);
    report.wall_time = s_->ended - s_->started;
    report.processes_killed = static_cast<int>(s_->reached.size());
    report.survivors = s_->survivors;
    report.escaped = s_->escaped;
    report.descendants_may_remain = !s_->own_group && !s_->cgroup;
    report.output_held_open = s_->output_held_open;
    return report;
}

}  // namespace ktstr
