// Running a payload: a program started in its own process group (and, if asked, its own
// cgroup), waited for through a pidfd, its stdout and stderr captured or redirected, and
// everything it started killed when its leader ends. Used by the guest init and by test bodies.
//
//   auto report = PayloadRun("stress-ng").args({"--cpu", "2"}).timeout(10s).run();
//   if (!report.success()) fail(report.describe() + "\n" + report.err.bytes);
//
// The payload's lifetime is its leader's: when the leader exits, is killed or times out, the
// rest of its process group is killed with SIGKILL before the leader is reaped (the unreaped
// leader keeps the group id from being reused).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ktstr {

// Where a payload's stdout or stderr goes.
class Output {
  public:
    enum class Kind { captured, inherited, fd };

    static Output captured() { return Output(Kind::captured, -1); }
    static Output inherited() { return Output(Kind::inherited, -1); }
    // The descriptor is borrowed: it must stay open until spawn() returns.
    static Output to_fd(int fd) { return Output(Kind::fd, fd); }

    Kind kind() const noexcept { return kind_; }
    int fd() const noexcept { return fd_; }

  private:
    Output(Kind kind, int fd) : kind_(kind), fd_(fd) {}
    Kind kind_;
    int fd_;
};

// How the payload's leader ended. A signal is never folded into an exit code.
struct PayloadExit {
    std::optional<int> exit_code;  // it called exit() with this status
    std::optional<int> signal;     // this signal ended it
    bool timed_out = false;        // the run's timeout passed and it was killed

    bool success() const noexcept { return exit_code == 0 && !timed_out; }
    // "exited with code 1", "killed by signal 9 (Killed)", "timed out, killed by signal 9 ..."
    std::string describe() const;
};

struct CapturedOutput {
    std::string bytes;       // exactly what arrived, up to the capture limit
    bool truncated = false;  // more arrived than the limit; the rest was read and dropped
};

struct PayloadReport : PayloadExit {
    CapturedOutput out;
    CapturedOutput err;
    std::chrono::nanoseconds wall_time{};  // from fork to the leader's end

    // Live processes our kill reached (group and cgroup), counted exactly: the cgroup is frozen,
    // or the group stopped, before its members are read, so none forks past the count.
    int processes_killed = 0;
    int escaped = 0;    // left the process group but were found in the cgroup and killed
    int survivors = 0;  // still alive when the kill stopped waiting for them (stuck in the kernel)
    // uses_parent_pgrp without a cgroup: only the leader was killed; its children may live on.
    bool descendants_may_remain = false;
    // Draining stopped at its time bound, not at end of file: a process outside the group
    // (setsid, no cgroup to find it) still holds stdout or stderr.
    bool output_held_open = false;
};

class PayloadHandle;

// What to run and how. Set up with the chained setters, then run() or spawn().
class PayloadRun {
  public:
    // A bare name is looked up on PATH (the payload's PATH if set, else ours, else
    // /bin:/usr/bin) before anything is started; a name with '/' is a path.
    explicit PayloadRun(std::string binary);

    PayloadRun& arg(std::string a);
    PayloadRun& args(std::vector<std::string> as);  // appends
    PayloadRun& clear_args();

    // The environment is ours by default; clear_env() starts from nothing.
    PayloadRun& env(std::string name, std::string value);
    PayloadRun& unset_env(std::string name);
    PayloadRun& clear_env();

    PayloadRun& working_dir(std::filesystem::path dir);

    PayloadRun& stdin_null();  // the default
    PayloadRun& stdin_bytes(std::string bytes);
    PayloadRun& stdout_to(Output where);                      // captured by default
    PayloadRun& stderr_to(Output where);                      // captured by default
    PayloadRun& capture_limit(std::size_t bytes_per_stream);  // default 64 MiB

    // Past it the group is killed and the exit says timed_out. Zero means none (the default).
    PayloadRun& timeout(std::chrono::milliseconds t);
    // How long wait_and_capture() keeps reading after the group is gone (default 500 ms);
    // only a process outside the group holding the pipes makes it wait that long.
    PayloadRun& drain_bound(std::chrono::milliseconds t);

    // The child joins this cgroup v2 directory before exec; at kill() and at the end, processes
    // found there are killed with cgroup.kill, those outside the group counted as escaped.
    PayloadRun& cgroup(std::filesystem::path dir);
    // Stay in our process group (tools that need tty job control): kills reach the
    // leader only, and the report says descendants may remain.
    PayloadRun& uses_parent_pgrp(bool yes = true);
    // Run as a session leader with `tty_fd` as controlling terminal and as stdin, stdout and
    // stderr (an interactive shell). Overrides the stdin/stdout/stderr settings.
    PayloadRun& controlling_terminal(int tty_fd);

    PayloadReport run() const;    // spawn(), then wait_and_capture()
    PayloadHandle spawn() const;  // throws if the program could not be started

  private:
    friend class PayloadHandle;
    std::string binary_;
    std::vector<std::string> args_;
    bool inherit_env_ = true;
    std::map<std::string, std::optional<std::string>> env_changes_;
    std::optional<std::filesystem::path> working_dir_;
    std::optional<std::string> stdin_bytes_;
    Output stdout_ = Output::captured();
    Output stderr_ = Output::captured();
    std::size_t capture_limit_ = 64 << 20;
    std::chrono::milliseconds timeout_{0};
    std::chrono::milliseconds drain_bound_{500};
    std::optional<std::filesystem::path> cgroup_;
    bool uses_parent_pgrp_ = false;
    int terminal_fd_ = -1;
};

// A started payload. Destroying a handle whose payload still runs kills its group and
// reaps the leader, so an exception never leaves a payload behind.
class PayloadHandle {
  public:
    PayloadHandle(PayloadHandle&&) noexcept;
    PayloadHandle& operator=(PayloadHandle&&) noexcept;
    ~PayloadHandle();

    pid_t pid() const noexcept;
    pid_t pgid() const noexcept;  // ours with uses_parent_pgrp
    // Readable once the leader has exited, for a caller's own poll loop; then call try_wait().
    int pidfd() const noexcept;
    // When the run's timeout will kill the payload, if it has not yet.
    std::optional<std::chrono::steady_clock::time_point> deadline() const noexcept;

    // The waits read captured output while they wait, so a chatty payload never blocks.
    PayloadExit wait();
    std::optional<PayloadExit> wait_for(std::chrono::milliseconds limit);
    std::optional<PayloadExit> try_wait();

    // SIGKILL to the cgroup if there is one, the group, then the leader (it may not have its own
    // group yet); returns once every process it reached has ended (bounded, see survivors).
    // The leader stays a zombie until a wait reaps it; orphans are reaped by their new parent.
    void kill();
    // SIGTERM to the group; SIGKILL after `grace` if the leader still runs.
    PayloadExit terminate(std::chrono::milliseconds grace);
    // wait(), then read stdout and stderr to their end (bounded, see drain_bound).
    PayloadReport wait_and_capture();

  private:
    friend class PayloadRun;
    struct State;
    explicit PayloadHandle(std::unique_ptr<State> s);
    std::unique_ptr<State> s_;
};

// One line of /proc/<pid>/stat, the fields the runtime and its tests need.
struct ProcessEntry {
    pid_t pid = 0;
    char state = '?';  // 'R', 'S', 'Z', ...
    pid_t ppid = 0;
    pid_t pgrp = 0;
    std::string name;                   // the command name, as the kernel keeps it (15 bytes)
    unsigned long long start_time = 0;  // clock ticks after boot: tells a reused pid apart
    bool kernel_thread = false;

    bool alive() const noexcept { return state != 'Z' && state != 'X'; }
};

// One process's entry; nothing when it is gone.
std::optional<ProcessEntry> process_entry(pid_t pid);

// A snapshot of every process in /proc (processes that exit while it is read are skipped).
std::vector<ProcessEntry> process_table();

}  // namespace ktstr
