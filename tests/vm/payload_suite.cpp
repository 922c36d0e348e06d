// The payload runtime (PayloadRun, PayloadHandle) inside the real guest: real stress-ng and
// fio, the guest's cgroup2, and busybox as the shell. Each KTSTR_TEST boots its own VM.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fmt/core.h>

#include <ktstr/error.hpp>
#include <ktstr/test.hpp>

#include "../common/generated_stream.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ktstr::AssertResult;
using ktstr::PayloadRun;
using Clock = std::chrono::steady_clock;

namespace {

inline constexpr ktstr::Payload stress_ng = ktstr::binary_payload("stress-ng");
inline constexpr ktstr::Payload fio = ktstr::binary_payload("fio");

// Declared by hand with nothing in include_files: fio is never packed.
inline constexpr ktstr::Payload unpacked_fio{.name = "fio", .kind = ktstr::Binary{"fio"}};

// A shell that stays in the test body's process group (as a tty job-control tool would).
inline constexpr ktstr::Payload parent_group_shell{
    .name = "sh", .kind = ktstr::Binary{"sh"}, .uses_parent_pgrp = true};

// --- Looking at the guest's processes -------------------------------------------------------

PayloadRun shell(const std::string& script) {
    return PayloadRun("sh").args({"-c", script});
}

double seconds(Clock::duration d) {
    return std::chrono::duration<double>(d).count();
}

// Zombies count: a member nobody reaped is still a leftover.
int group_size(pid_t pgid) {
    int n = 0;
    for (const auto& p : ktstr::process_table())
        if (p.pgrp == pgid) ++n;
    return n;
}

// No process of the group left, zombies included, in one atomic look: killpg finds a zombie
// until it is reaped. A /proc scan answers the same, but takes long enough in a loaded TCG
// guest (see the printed scan time) to blur when the group emptied.
bool no_process_in_group(pid_t pgid) {
    return ::killpg(pgid, 0) != 0 && errno == ESRCH;
}

bool is_running(pid_t pid) {
    for (const auto& p : ktstr::process_table())
        if (p.pid == pid) return p.state != 'Z' && p.state != 'X';
    return false;
}

int zombie_children() {
    int n = 0;
    for (const auto& p : ktstr::process_table())
        if (p.ppid == ::getpid() && p.state == 'Z') ++n;
    return n;
}

int zombies_anywhere() {
    int n = 0;
    for (const auto& p : ktstr::process_table())
        if (p.state == 'Z') ++n;
    return n;
}

int open_fd_count() {
    int n = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator("/proc/self/fd")) ++n;
    return n;
}

// Polls `done` until it holds or `limit` passes; says whether it held.
bool within(std::chrono::milliseconds limit, const std::function<bool()>& done) {
    for (auto until = Clock::now() + limit;; std::this_thread::sleep_for(10ms)) {
        if (done()) return true;
        if (Clock::now() >= until) return false;
    }
}

// When a condition was first seen to hold after an event (a kill), watched for up to 5 s.
struct FirstSeen {
    std::optional<Clock::duration> after;

    bool within(Clock::duration limit) const { return after && *after <= limit; }
    std::string text() const {
        return after ? fmt::format("{:.3f} s", seconds(*after)) : std::string("over 5 s");
    }
};

FirstSeen first_seen(Clock::time_point event, const std::function<bool()>& done) {
    for (;; std::this_thread::sleep_for(10ms)) {
        bool held = done();
        auto since = Clock::now() - event;  // read after done(): it held no later than this
        if (held) return {since};
        if (since > 5s) return {};
    }
}

// Waits for a payload to write a pid (or anything) into `file`, its way of saying it is ready.
pid_t wait_for_pid_file(const fs::path& file) {
    pid_t pid = 0;
    within(30s, [&] {
        std::ifstream in(file);
        return static_cast<bool>(in >> pid) && pid > 0;
    });
    return pid;
}

// A cgroup v2 directory of the test's own under the guest's /sys/fs/cgroup.
class Cgroup {
  public:
    explicit Cgroup(const std::string& name) : dir_(fs::path("/sys/fs/cgroup") / name) {
        if (::mkdir(dir_.c_str(), 0755) != 0)
            ktstr::throw_errno("cannot create cgroup " + dir_.string());
    }
    ~Cgroup() {
        within(2s, [&] { return ::rmdir(dir_.c_str()) == 0 || errno != EBUSY; });
    }
    Cgroup(const Cgroup&) = delete;
    Cgroup& operator=(const Cgroup&) = delete;

    const fs::path& dir() const { return dir_; }

    std::vector<pid_t> procs() const {
        std::ifstream in(dir_ / "cgroup.procs");
        if (!in) ktstr::throw_errno("cannot read " + (dir_ / "cgroup.procs").string());
        std::vector<pid_t> pids;
        for (pid_t pid; in >> pid;) pids.push_back(pid);
        return pids;
    }

  private:
    fs::path dir_;
};

// --- Kill and check what is left --------------------------------------------------------------

// Lets a payload start its workers: at least `members` processes in its group, then `settle`.
bool workers_started(const ktstr::PayloadHandle& h, int members, std::chrono::milliseconds settle) {
    bool started = within(30s, [&] { return group_size(h.pgid()) >= members; });
    std::this_thread::sleep_for(settle);
    return started;
}

// The same, counted in the cgroup: fio's jobs and stress-ng's fork workers leave the group.
bool workers_started(const Cgroup& cgroup, int members, std::chrono::milliseconds settle) {
    bool started = within(30s, [&] { return int(cgroup.procs().size()) >= members; });
    std::this_thread::sleep_for(settle);
    return started;
}

// kill() returns only once everything it reached has ended, within 1 s, and init has reaped
// the orphans' zombies (we reap the leader) within 1 s of the kill too: /proc then shows
// nothing of the group and the cgroup is empty. Under TCG the guest's clock is the host's, so
// a host that starves the vCPU threads stretches every step in this second; the printed /proc
// scan time says how slow the guest was.
AssertResult kill_leaves_nothing(ktstr::PayloadHandle handle, const Cgroup& cgroup, int workers) {
    auto result = AssertResult::pass();
    result.expect(workers_started(cgroup, workers + 1, 1500ms),
                  fmt::format("the payload never had {} workers in its cgroup", workers));
    int members_at_kill = int(cgroup.procs().size());
    pid_t pgid = handle.pgid();

    auto killed_at = Clock::now();
    handle.kill();
    auto kill_took = Clock::now() - killed_at;
    // cgroup.procs lists no zombie: what it shows still runs. One read, so the check does not
    // hold back the leader's reaping the way a /proc scan would.
    auto running_after_kill = cgroup.procs().size();
    auto report = handle.wait_and_capture();
    auto captured = Clock::now() - killed_at;
    auto gone = first_seen(killed_at, [&] { return no_process_in_group(pgid); });
    int in_proc = group_size(pgid);

    auto scan_started = Clock::now();
    ktstr::process_table();
    auto scan_took = Clock::now() - scan_started;

    result.expect(report.signal == SIGKILL, "the leader " + report.describe());
    result.expect(report.processes_killed >= workers + 1,
                  fmt::format("kills reached {} processes, the cgroup had {}",
                              report.processes_killed, members_at_kill));
    result.expect(report.survivors == 0, fmt::format("{} survivors", report.survivors));
    result.expect(kill_took <= 1s, fmt::format("kill() took {:.3f} s", seconds(kill_took)));
    result.expect(running_after_kill == 0,
                  fmt::format("{} processes of the payload still ran when kill() returned",
                              running_after_kill));
    result.expect(gone.within(1s), fmt::format("group {} was gone (zombies reaped) only {} after "
                                               "kill()",
                                               pgid, gone.text()));
    result.expect(in_proc == 0, fmt::format("/proc still shows {} processes of group {} after "
                                            "killpg found none",
                                            in_proc, pgid));
    result.expect(cgroup.procs().empty(), cgroup.dir().string() + " is not empty");
    fmt::print(
        "{} in the cgroup at kill; kill() took {:.3f} s, captured after {:.3f} s, group gone "
        "after {}; one /proc scan {:.1f} ms; {} killed, {} escaped\n",
        members_at_kill, seconds(kill_took), seconds(captured), gone.text(),
        1e3 * seconds(scan_took), report.processes_killed, report.escaped);
    return result;
}

}  // namespace

// --- Killing real workloads ---------------------------------------------------------------------

KTSTR_TEST(stress_cpu_killed_leaves_nothing, .payload = &stress_ng, .timeout_s = 180) {
    Cgroup cgroup("stress-cpu");
    auto handle =
        ctx.payload(stress_ng).args({"--cpu", "4", "--timeout", "60"}).cgroup(cgroup.dir()).spawn();
    return kill_leaves_nothing(std::move(handle), cgroup, 4);
}

// stress-ng's fork workers call setsid: only the cgroup reaches them.
KTSTR_TEST(stress_fork_killed_leaves_nothing, .payload = &stress_ng, .timeout_s = 180) {
    Cgroup cgroup("stress-fork");
    auto handle = ctx.payload(stress_ng)
                      .args({"--fork", "4", "--timeout", "60"})
                      .cgroup(cgroup.dir())
                      .spawn();
    return kill_leaves_nothing(std::move(handle), cgroup, 4);
}

KTSTR_TEST(fio_jobs_killed_leave_nothing, .payload = &fio, .timeout_s = 180) {
    Cgroup cgroup("fio");
    auto handle = ctx.payload(fio)
                      .args({"--numjobs=4", "--directory=/tmp", "--size=16M", "--time_based",
                             "--runtime=60", "--name=x", "--rw=randrw"})
                      .cgroup(cgroup.dir())
                      .spawn();
    return kill_leaves_nothing(std::move(handle), cgroup, 4);
}

// --- Capture never hangs ----------------------------------------------------------------------

KTSTR_TEST(killed_pipeline_capture_returns_promptly, .timeout_s = 120) {
    auto handle = shell("sleep 1000 | cat").spawn();
    bool started = workers_started(handle, 3, 200ms);  // sh, sleep and cat

    auto killed_at = Clock::now();
    handle.kill();
    auto report = handle.wait_and_capture();
    auto took = Clock::now() - killed_at;
    auto group_gone = first_seen(killed_at, [&] { return no_process_in_group(handle.pgid()); });

    return AssertResult::pass()
        .expect(started, "the pipeline never had its three processes")
        .expect(report.signal == SIGKILL, "the leader " + report.describe())
        .expect(took < 1s, fmt::format("kill + capture took {:.3f} s", seconds(took)))
        .expect(!report.output_held_open, "the capture says a holder kept the pipes open")
        .expect(group_gone.within(1s),
                "the pipeline's group was empty only " + group_gone.text() + " after kill()");
}

// The backgrounded sleep keeps stdout open after the leader exits on its own.
KTSTR_TEST(grandchild_holding_stdout_does_not_hang_capture, .timeout_s = 120) {
    auto started = Clock::now();
    auto handle = shell("(sleep 1000 &); echo hi").spawn();
    pid_t pgid = handle.pgid();
    auto report = handle.wait_and_capture();
    auto captured_at = Clock::now();
    auto group_gone = first_seen(captured_at, [&] { return no_process_in_group(pgid); });

    // Held open, the capture would end at the 500 ms drain bound and say so.
    auto took = captured_at - started;
    return AssertResult::pass()
        .expect(report.exit_code == 0, "the shell " + report.describe())
        .expect(report.out.bytes == "hi\n", "captured stdout: '" + report.out.bytes + "'")
        .expect(took < 2s, fmt::format("run + capture took {:.3f} s", seconds(took)))
        .expect(!report.output_held_open, "the capture stopped at its bound, not at EOF")
        .expect(group_gone.within(1s),
                "the backgrounded sleep was gone only " + group_gone.text() + " after capture");
}

// --- Stopping ----------------------------------------------------------------------------------

KTSTR_TEST(terminate_escalates_to_sigkill_after_grace, .timeout_s = 120) {
    // The ignored SIGTERM is inherited by sleep too, so nothing in the group obeys it.
    auto handle = shell("trap '' TERM; echo $$ > /tmp/ready; sleep 1000").spawn();
    bool ready = wait_for_pid_file("/tmp/ready") == handle.pid();

    constexpr auto grace = 500ms;
    auto asked_at = Clock::now();
    auto exit = handle.terminate(grace);
    auto took = Clock::now() - asked_at;

    return AssertResult::pass()
        .expect(ready, "the shell never said it had installed its trap")
        .expect(exit.signal == SIGKILL, "the leader " + exit.describe())
        .expect(took >= grace,
                fmt::format("terminate took {:.3f} s, less than the grace", seconds(took)))
        .expect(took < grace + 2s, fmt::format("terminate took {:.3f} s", seconds(took)));
}

KTSTR_TEST(setsid_grandchild_killed_through_cgroup, .timeout_s = 120) {
    Cgroup cgroup("setsid");
    auto handle = shell("setsid sleep 1000 & sleep 1000").cgroup(cgroup.dir()).spawn();
    pid_t escapee = 0;
    within(30s, [&] {
        for (pid_t pid : cgroup.procs())
            if (pid_t group = ::getpgid(pid); group == pid && group != handle.pgid()) escapee = pid;
        return escapee != 0;
    });

    auto killed_at = Clock::now();
    handle.kill();
    auto report = handle.wait_and_capture();
    auto escapee_gone = first_seen(killed_at, [&] { return !is_running(escapee); });
    auto cgroup_empty = first_seen(killed_at, [&] { return cgroup.procs().empty(); });

    return AssertResult::pass()
        .expect(escapee != 0, "the setsid'd sleep never showed up in the cgroup")
        .expect(report.escaped >= 1, fmt::format("report.escaped is {}", report.escaped))
        .expect(!report.output_held_open, "the escapee kept stdout open past the drain bound")
        .expect(escapee_gone.within(1s), fmt::format("the setsid'd sleep {} was gone only {} "
                                                     "after kill()",
                                                     escapee, escapee_gone.text()))
        .expect(cgroup_empty.within(1s),
                "the cgroup was empty only " + cgroup_empty.text() + " after kill()");
}

KTSTR_TEST(exception_with_live_handle_leaves_nothing, .timeout_s = 120) {
    pid_t pgid = 0;
    bool started = false;
    auto thrown_at = Clock::now();
    try {
        auto handle = shell("sleep 1000 | cat").spawn();
        pgid = handle.pgid();
        started = workers_started(handle, 3, 100ms);
        thrown_at = Clock::now();
        throw std::runtime_error("thrown with a live handle");
    } catch (const std::runtime_error&) {
    }

    auto group_gone = first_seen(thrown_at, [&] { return no_process_in_group(pgid); });
    return AssertResult::pass()
        .expect(started, "the pipeline never had its three processes")
        .expect(group_gone.within(1s),
                fmt::format("group {} was empty only {} after the throw", pgid, group_gone.text()));
}

KTSTR_TEST(parent_group_payload_is_killed_by_pid_only, .timeout_s = 120) {
    auto handle = ctx.payload(parent_group_shell)
                      .args({"-c", "sleep 1000 & echo $! > /tmp/child; wait"})
                      .spawn();
    pid_t child = wait_for_pid_file("/tmp/child");
    bool shares_our_group = handle.pgid() == ::getpgrp() && ::getpgid(handle.pid()) == ::getpgrp();

    handle.kill();
    auto report = handle.wait_and_capture();
    bool child_survived = child > 0 && is_running(child);
    if (child > 0) ::kill(child, SIGKILL);  // ours to clean up: the runtime did not reach it

    return AssertResult::pass()
        .expect(child > 0, "the shell never wrote its child's pid")
        .expect(shares_our_group, "the payload is not in the test body's process group")
        .expect(report.signal == SIGKILL, "the leader " + report.describe())
        .expect(child_survived, "the child was killed, so the kill was not pid-only")
        .expect(report.descendants_may_remain, "the report does not say descendants may remain");
}

// One spawn/kill cycle. Most kills land somewhere in stress-ng's start-up (exec, set-up, the
// first forks); every tenth waits for all eight workers. Says whether the leader died of it.
bool spawn_and_kill(const ktstr::Ctx& ctx, const Cgroup& cgroup, int cycle, int& with_workers) {
    auto handle = ctx.payload(stress_ng)
                      .args({"--fork", "8", "--timeout", "60"})
                      .cgroup(cgroup.dir())
                      .spawn();
    if (cycle % 10 == 9)
        within(20s, [&] { return cgroup.procs().size() > 8; });
    else
        std::this_thread::sleep_for(std::chrono::milliseconds(20 * (cycle % 10)));
    if (cgroup.procs().size() > 8) ++with_workers;
    handle.kill();
    return handle.wait_and_capture().signal == SIGKILL;
}

// All 100 cycles fit: under TCG on a shared 2-core host they took 40-80 s of the test's time
// (beside a second VM), well inside the 3-minute budget.
KTSTR_TEST(spawn_kill_cycles_leave_no_zombie_or_fd, .payload = &stress_ng, .timeout_s = 300) {
    constexpr int kCycles = 100;
    Cgroup cgroup("cycles");
    int fds_before = open_fd_count();
    int not_killed = 0, with_workers = 0;

    auto started = Clock::now();
    for (int cycle = 0; cycle < kCycles; ++cycle)
        if (!spawn_and_kill(ctx, cgroup, cycle, with_workers)) ++not_killed;
    fmt::print("{} spawn/kill cycles in {:.1f} s, {} killed with all workers running\n", kCycles,
               seconds(Clock::now() - started), with_workers);

    int fds_after = open_fd_count();
    int zombies = zombie_children();
    bool cgroup_empty = within(1s, [&] { return cgroup.procs().empty(); });
    bool no_zombies = within(1s, [] { return zombies_anywhere() == 0; });
    return AssertResult::pass()
        .expect(not_killed == 0, fmt::format("{} cycles did not end by SIGKILL", not_killed))
        .expect(
            with_workers >= kCycles / 20,
            fmt::format("only {} cycles killed stress-ng with its workers running", with_workers))
        .expect(fds_after == fds_before,
                fmt::format("open fds: {} before, {} after", fds_before, fds_after))
        .expect(zombies == 0, fmt::format("{} zombie children of the test body", zombies))
        .expect(cgroup_empty, "processes are left in the cgroup")
        .expect(no_zombies,
                fmt::format("{} zombies in the guest 1 s after the cycles", zombies_anywhere()));
}

// Every process of a fork bomb (stress-ng --fork 8, killed at many points of its start-up and
// run) ends up reaped here: the body adopts orphans (a subreaper) and the handle reaps the
// leader. Those that died of SIGKILL are exactly the processes the kill reached.
int reap_adopted_killed(bool& all_ended) {
    int killed = 0;
    all_ended = true;
    for (;;) {
        siginfo_t info{};
        if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG) != 0) return killed;  // no child left
        if (info.si_pid == 0) {
            all_ended = false;  // a child still runs
            return killed;
        }
        if (info.si_code == CLD_KILLED && info.si_status == SIGKILL) ++killed;
    }
}

KTSTR_TEST(fork_bomb_kill_count_is_exact, .payload = &stress_ng, .timeout_s = 300) {
    constexpr int kRounds = 12;
    if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) ktstr::throw_errno("cannot become a subreaper");
    Cgroup cgroup("forkbomb");
    auto result = AssertResult::pass();
    int largest = 0;
    for (int round = 0; round < kRounds; ++round) {
        auto handle = ctx.payload(stress_ng)
                          .args({"--fork", "8", "--timeout", "60"})
                          .cgroup(cgroup.dir())
                          .spawn();
        if (round % 3 == 2)
            workers_started(cgroup, 9, std::chrono::milliseconds(100 * round));
        else
            std::this_thread::sleep_for(std::chrono::milliseconds(50 * round));
        handle.kill();
        auto report = handle.wait_and_capture();

        bool all_ended = false;
        int died_of_sigkill = (report.signal == SIGKILL) + reap_adopted_killed(all_ended);
        largest = std::max(largest, died_of_sigkill);
        result.expect(all_ended, fmt::format("round {}: a process still ran after kill()", round));
        result.expect(report.processes_killed == died_of_sigkill,
                      fmt::format("round {}: processes_killed {}, but {} died of SIGKILL", round,
                                  report.processes_killed, died_of_sigkill));
    }
    fmt::print("{} rounds, at most {} processes killed at once\n", kRounds, largest);
    return result.expect(largest > 9, fmt::format("no kill reached more than {} processes "
                                                  "(stress-ng's leader and 8 workers)",
                                                  largest));
}

// --- Output --------------------------------------------------------------------------------------

namespace {

using ktstr::testing::generated_stream;

void write_file(const fs::path& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
}

// Where two captures first differ, for a failure message.
std::string first_difference(const std::string& got, const std::string& expected) {
    std::size_t i = 0;
    while (i < got.size() && i < expected.size() && got[i] == expected[i]) ++i;
    return fmt::format("{} bytes, expected {}; first difference at byte {}", got.size(),
                       expected.size(), i);
}

}  // namespace

// Two cats write at once; the expected bytes are computed here and written to tmpfs first.
KTSTR_TEST(large_stdout_and_stderr_arrive_byte_exact, .timeout_s = 180) {
    auto expected_out = generated_stream(20 << 20, 1);
    auto expected_err = generated_stream(20 << 20, 2);
    write_file("/tmp/out", expected_out);
    write_file("/tmp/err", expected_err);

    auto started = Clock::now();
    auto report = shell("cat out & cat err >&2; wait").working_dir("/tmp").run();
    fmt::print("40 MB captured in {:.1f} s\n", seconds(Clock::now() - started));

    return AssertResult::pass()
        .expect(report.exit_code == 0, "the shell " + report.describe())
        .expect(!report.out.truncated && !report.err.truncated, "a capture was truncated")
        .expect(report.out.bytes == expected_out,
                "stdout: " + first_difference(report.out.bytes, expected_out))
        .expect(report.err.bytes == expected_err,
                "stderr: " + first_difference(report.err.bytes, expected_err));
}

// --- Spawn errors --------------------------------------------------------------------------------

KTSTR_TEST(unpacked_binary_is_named_with_the_path_searched, .timeout_s = 60) {
    const std::string path = ::getenv("PATH") ? ::getenv("PATH") : "";
    const std::string expected = "cannot find payload binary 'fio' on PATH " + ktstr::quoted(path);
    std::string message = "nothing: the spawn succeeded";
    try {
        ctx.payload(unpacked_fio).spawn();
    } catch (const ktstr::Error& e) {
        message = e.what();
    }
    return AssertResult::pass()
        .expect(!path.empty(), "the guest has no PATH")
        .expect(message == expected, "the spawn threw " + message + "\nexpected " + expected);
}

// The guest has busybox's applets without their links: PayloadRun runs one by its bare name,
// but never busybox's init, which must not stand in for PID 1.
KTSTR_TEST(busybox_applet_runs_by_name_without_a_link, .timeout_s = 60) {
    auto report = PayloadRun("basename").args({"/a/b/leaf"}).run();
    std::string init_message = "nothing: the spawn succeeded";
    try {
        PayloadRun("init").spawn();
    } catch (const ktstr::Error& e) {
        init_message = e.what();
    }
    std::error_code ec;
    return AssertResult::pass()
        .expect(!fs::exists(fs::symlink_status("/bin/basename", ec)), "/bin/basename exists")
        .expect(report.exit_code == 0, "basename " + report.describe())
        .expect(report.out.bytes == "leaf\n", "basename printed '" + report.out.bytes + "'")
        .expect(init_message.find("cannot find payload binary 'init'") != std::string::npos,
                "PayloadRun(\"init\") gave: " + init_message);
}
