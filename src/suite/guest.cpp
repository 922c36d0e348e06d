// The guest half of a suite: inside the VM, start the test's scheduler, run its body in a
// child process while watching the scheduler and the kernel, stop the scheduler, and leave the
// result where init finds it.
//
// The body runs in a forked child so that a failure is reported promptly whatever the body is
// doing: when the scheduler dies or the kernel ejects it, the watcher kills the body (its
// descendants and their process groups, payloads included) instead of waiting for it.
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <thread>

#include "ktstr/error.hpp"
#include "ktstr/fd.hpp"
#include "scheduler_run.hpp"
#include "suite.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace ktstr::suite {
namespace {

constexpr auto kWatchInterval = 100ms;

const char* kPackagingHint =
    "; to package it, list it in the payload's include_files (ktstr::binary_payload does "
    "this) or in the test's extra_include_files";

AssertResult result_from_json(const std::string& text) {
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (!j.is_object()) return AssertResult::fail("the test body left an unreadable result");
    std::vector<std::string> messages;
    for (const auto& m : j.value("messages", nlohmann::json::array()))
        if (m.is_string()) messages.push_back(m.get<std::string>());
    auto status = j.value("status", "");
    if (status == "pass") return AssertResult::pass();
    if (status == "skip") return AssertResult::skip(messages.empty() ? "" : messages.front());
    return AssertResult::fail(messages);
}

unsigned long read_taint() {
    std::ifstream in("/proc/sys/kernel/tainted");
    unsigned long taint = 0;
    in >> taint;
    return taint;
}

// --- The body, in a child process -----------------------------------------------------------

[[noreturn]] void run_body_child(const TestCase& t, int result_fd) {
    auto result = AssertResult::fail("the test body did not return");
    try {
        Ctx ctx(Topology::parse(t.attrs.topology), t.attrs.scheduler);
        result = t.body(ctx);
    } catch (const std::exception& e) {
        std::string text = e.what();
        if (text.rfind("cannot find payload binary", 0) == 0) text += kPackagingHint;
        result = AssertResult::fail("the test threw: " + text);
    }
    try {
        auto text = result_to_json(result).dump();
        write_all(result_fd, text.data(), text.size(), "the test body's result");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "ktstr: %s\n", e.what());
    }
    std::cout.flush();
    std::cerr.flush();
    std::fflush(nullptr);
    ::_exit(0);  // no destructors: the parent's objects (the scheduler's handle) are not ours
}

// Kills `root`'s descendants and their process groups (payloads run in groups of their own),
// then `root`'s group. A process whose parent has died is reparented to init and found no more
// here: end_leftovers() finds it once the body has ended.
void kill_process_tree(pid_t root) {
    std::set<pid_t> tree = {root};
    std::set<pid_t> groups = {root};
    for (bool grew = true; grew;) {
        grew = false;
        for (const auto& p : process_table()) {
            if (!tree.count(p.ppid) || tree.count(p.pid)) continue;
            tree.insert(p.pid);
            groups.insert(p.pgrp);
            grew = true;
        }
    }
    for (pid_t never : {0, 1, ::getpgrp()}) groups.erase(never);
    for (pid_t g : groups) ::killpg(g, SIGKILL);
    for (pid_t p : tree) ::kill(p, SIGKILL);
}

// --- What outlives the body ------------------------------------------------------------------

constexpr auto kLeftoverBound = 2s;

// A user process, told apart from a later one that reuses its pid.
using ProcessKey = std::pair<pid_t, unsigned long long>;

std::set<ProcessKey> user_processes() {
    std::set<ProcessKey> keys;
    for (const auto& p : process_table())
        if (!p.kernel_thread && p.pid != 1) keys.insert({p.pid, p.start_time});
    return keys;
}

bool descends_from(pid_t ancestor, pid_t pid, const std::map<pid_t, pid_t>& parents) {
    for (int depth = 0; pid > 1 && depth < 1024; ++depth) {
        if (pid == ancestor) return true;
        auto up = parents.find(pid);
        if (up == parents.end()) return false;
        pid = up->second;
    }
    return false;
}

struct Leftover {
    ProcessEntry entry;
    Fd pidfd;
};

// Every user process started since `before` that is not ours (the scheduler and its children
// are) gets SIGKILL, in rounds until one finds nothing new: a dying process may have forked
// just before its kill.
std::vector<Leftover> kill_new_processes(const std::set<ProcessKey>& before) {
    std::vector<Leftover> killed;
    std::set<pid_t> seen;
    for (bool found = true; found;) {
        found = false;
        auto table = process_table();
        std::map<pid_t, pid_t> parents;
        for (const auto& p : table) parents[p.pid] = p.ppid;
        for (auto& p : table) {
            // Children of kthreadd (pid 2) are the kernel's user-mode helpers, not the body's.
            if (p.kernel_thread || p.pid == 1 || p.ppid == 2 || !p.alive() || seen.count(p.pid) ||
                before.count({p.pid, p.start_time}) || descends_from(::getpid(), p.pid, parents))
                continue;
            Fd fd(static_cast<int>(::syscall(SYS_pidfd_open, p.pid, 0)));
            seen.insert(p.pid);
            if (!fd) continue;  // already gone
            ::syscall(SYS_pidfd_send_signal, fd.get(), SIGKILL, nullptr, 0);
            killed.push_back({std::move(p), std::move(fd)});
            found = true;
        }
    }
    return killed;
}

bool reaped(const ProcessEntry& e) {
    auto now = process_entry(e.pid);
    return !now || now->start_time != e.start_time;  // gone, or the pid was reused
}

// Kills what the body left behind, waits until init has reaped it, and says what it was. A
// process that left its payload's group and cgroup (setsid after a double fork) is reparented
// to init, out of every handle's reach; nothing of the body may outlive it.
std::vector<std::string> end_leftovers(const std::set<ProcessKey>& before) {
    auto killed = kill_new_processes(before);
    if (killed.empty()) return {};

    auto until = Clock::now() + kLeftoverBound;
    std::string names;
    std::vector<std::string> stuck;
    for (auto& k : killed) {
        while (!reaped(k.entry) && Clock::now() < until) std::this_thread::sleep_for(10ms);
        auto name = std::to_string(k.entry.pid) + " (" + k.entry.name + ")";
        names += (names.empty() ? "" : ", ") + name;
        if (!reaped(k.entry)) stuck.push_back(name);
    }
    std::vector<std::string> messages = {
        std::to_string(killed.size()) + (killed.size() == 1 ? " process" : " processes") +
        " outlived the test body and had to be killed: " + names +
        " (reparented to init, beyond every payload's kill: a payload's process that calls "
        "setsid, with no cgroup to find it, escapes its kill)"};
    for (const auto& s : stuck)
        messages.push_back(s + " was still not reaped " + std::to_string(kLeftoverBound.count()) +
                           " s after SIGKILL");
    return messages;
}

// A test body (or a command) running in its own process group, in a child process.
class BodyProcess {
  public:
    explicit BodyProcess(const BodyMain& main) : before_(user_processes()) {
        result_.reset(::memfd_create("ktstr-body-result", MFD_CLOEXEC));
        if (!result_) throw_errno("cannot create the test body's result file");
        std::cout.flush();
        std::cerr.flush();
        std::fflush(nullptr);
        pid_ = ::fork();
        if (pid_ < 0) throw_errno("cannot fork the test body");
        if (pid_ == 0) {
            ::setpgid(0, 0);
            main(result_.get());
            ::_exit(127);  // a BodyMain must not return; if it does, it ran nothing
        }
        ::setpgid(pid_, pid_);  // the child does it too; whichever runs first, no kill misses
        pidfd_.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0)));
        if (!pidfd_) throw_errno("cannot open a pidfd for the test body");
    }
    BodyProcess(const BodyProcess&) = delete;
    BodyProcess& operator=(const BodyProcess&) = delete;
    ~BodyProcess() {
        if (!ended_) kill();
    }

    int pidfd() const { return pidfd_.get(); }
    // How its process ended, once try_result() has seen it end.
    const std::optional<PayloadExit>& exit() const { return exit_; }
    // After it ended: kills and reaps what it left running (see end_leftovers).
    std::vector<std::string> end_leftovers() const { return suite::end_leftovers(before_); }

    // Its result once it has ended; nothing while it runs.
    std::optional<AssertResult> try_result() {
        siginfo_t info{};
        if (::waitid(P_PID, pid_, &info, WEXITED | WNOHANG) != 0)
            throw_errno("cannot wait for the test body");
        if (info.si_pid == 0) return std::nullopt;
        ended_ = true;
        std::string text;
        char chunk[65536];
        for (ssize_t n; (n = ::pread(result_.get(), chunk, sizeof chunk, off_t(text.size()))) > 0;)
            text.append(chunk, size_t(n));
        exit_.emplace();
        if (info.si_code == CLD_EXITED)
            exit_->exit_code = info.si_status;
        else
            exit_->signal = info.si_status;
        if (info.si_code == CLD_EXITED && info.si_status == 0 && !text.empty())
            return result_from_json(text);
        return AssertResult::fail("the test body " + exit_->describe() + " without a result");
    }

    // Kills it with everything it started, and reaps it.
    void kill() {
        kill_process_tree(pid_);  // not reaped yet: its group id is still its own
        siginfo_t info{};
        while (::waitid(P_PID, pid_, &info, WEXITED) != 0 && errno == EINTR) {
        }
        ended_ = true;
    }

  private:
    pid_t pid_ = -1;
    Fd pidfd_, result_;
    bool ended_ = false;
    std::optional<PayloadExit> exit_;
    std::set<ProcessKey> before_;  // the user processes running before it started
};

// --- Watching the body and the scheduler ----------------------------------------------------

enum class Event { BodyEnded, TimedOut, SchedulerLost };

struct Watch {
    BodyProcess& body;
    KernelLog& log;
    RunningScheduler* scheduler = nullptr;  // a scheduler process to watch
    bool expect_enabled = false;            // sched_ext must stay `enabled`
};

Event watch(Watch& w, std::optional<Clock::time_point> deadline,
            std::optional<AssertResult>& result) {
    for (;;) {
        pollfd fds[3] = {{w.body.pidfd(), POLLIN, 0},
                         {w.log.fd(), POLLIN, 0},
                         {w.scheduler ? w.scheduler->pidfd() : -1, POLLIN, 0}};
        auto wait = deadline ? std::min<Clock::duration>(*deadline - Clock::now(), kWatchInterval)
                             : Clock::duration(kWatchInterval);
        int ms = int(std::max<long>(0, std::chrono::ceil<std::chrono::milliseconds>(wait).count()));
        if (::poll(fds, 3, ms) < 0 && errno != EINTR) throw_errno("cannot watch the test body");
        w.log.read_new();
        if (w.scheduler && (w.scheduler->poll() || !w.scheduler->attached()))
            return Event::SchedulerLost;
        if (w.expect_enabled && read_sched_ext("state") != "enabled") return Event::SchedulerLost;
        if ((result = w.body.try_result())) return Event::BodyEnded;
        if (deadline && Clock::now() >= *deadline) return Event::TimedOut;
    }
}

// sched_ext left `enabled` under a scheduler the enable commands started.
std::vector<std::string> state_loss(KernelLog& log, double at_s) {
    auto verdict = await_kernel_verdict(log);
    auto reason = verdict.reason();
    char head[160];
    std::snprintf(head, sizeof head,
                  "sched_ext left 'enabled' %.1f s into the test body (the scheduler the enable "
                  "commands started): ",
                  at_s);
    std::vector<std::string> messages = {head +
                                         (reason.empty() ? "the kernel gave no reason" : reason)};
    messages.insert(messages.end(), verdict.messages.begin(), verdict.messages.end());
    return messages;
}

// What the watch saw end first, into `run`.
void judge_event(GuardedRun& run, double timeout_s, Watch& w, Event event, double at_s,
                 std::optional<AssertResult> result) {
    if (event == Event::BodyEnded) {
        run.body = std::move(result);
        run.body_exit = w.body.exit();
        return;
    }
    w.body.kill();
    if (event == Event::TimedOut) {
        char text[96];
        std::snprintf(text, sizeof text,
                      "the test body ran past its timeout of %g s and was killed", timeout_s);
        run.problems.push_back(text);
        return;
    }
    run.scheduler_lost = true;
    auto lost = w.scheduler ? w.scheduler->report_loss(w.log, at_s) : state_loss(w.log, at_s);
    run.problems.insert(run.problems.end(), lost.begin(), lost.end());
}

// Runs the body under the watch. `timeout_s` 0: no deadline of its own.
void run_watched(GuardedRun& run, double timeout_s, Watch w) {
    auto started = Clock::now();
    std::optional<Clock::time_point> deadline;
    if (timeout_s > 0)
        deadline = started + std::chrono::duration_cast<Clock::duration>(
                                 std::chrono::duration<double>(timeout_s));
    std::optional<AssertResult> result;
    auto event = watch(w, deadline, result);
    double at_s = std::chrono::duration<double>(Clock::now() - started).count();
    judge_event(run, timeout_s, w, event, at_s, std::move(result));
    auto left = w.body.end_leftovers();
    run.problems.insert(run.problems.end(), left.begin(), left.end());
}

// --- A body under its scheduler ---------------------------------------------------------

void append(std::vector<std::string>& to, const std::vector<std::string>& messages) {
    to.insert(to.end(), messages.begin(), messages.end());
}

// KernelBuiltin commands: their output is the body's output; a failing one is a problem.
std::vector<std::string> run_commands(const Words& commands, const char* what) {
    for (auto c : commands) {
        auto r = PayloadRun("/bin/sh").arg("-c").arg(std::string(c)).run();
        std::cout << r.out.bytes << std::flush;
        std::cerr << r.err.bytes << std::flush;
        if (!r.success())
            return {std::string("cannot ") + what + " the scheduler: command " +
                    quoted(std::string(c)) + " " + r.describe() + "; its output:\n" + r.out.bytes +
                    r.err.bytes};
    }
    return {};
}

void run_builtin(GuardedRun& run, const Scheduler& s, double timeout_s, const BodyMain& main,
                 KernelLog& log) {
    run.scheduler = std::string(s.name);
    if (auto failed = run_commands(s.spec.enable, "enable"); !failed.empty())
        return append(run.problems, failed);
    bool enabled = kernel_has_sched_ext() && read_sched_ext("state") == "enabled";
    if (enabled) run.scheduler = attached_ops();

    BodyProcess body(main);
    run_watched(run, timeout_s, {body, log, nullptr, enabled});
    append(run.problems, run_commands(s.spec.disable, "disable"));
}

void run_sched_ext(GuardedRun& run, const Scheduler& s, double timeout_s, const BodyMain& main,
                   KernelLog& log) {
    std::string name = scheduler_label(s);
    run.scheduler = name;
    if (!kernel_has_sched_ext()) {
        run.skipped =
            "this kernel has no sched_ext (/sys/kernel/sched_ext is missing): "
            "scheduler " +
            quoted(name) + " cannot run";
        return;
    }
    auto start = RunningScheduler::start(s, log);
    if (auto* failed = std::get_if<AttachFailure>(&start)) {
        if (!failed->error.verifier_log.empty())
            std::cerr << "--- verifier log of scheduler " << name << " (whole)\n"
                      << failed->error.verifier_log << "--- end of verifier log\n"
                      << std::flush;
        return append(run.problems, describe_attach_failure(s, *failed));
    }
    auto& running = std::get<RunningScheduler>(start);
    if (running.poll() || !running.attached()) {
        run.scheduler_lost = true;
        append(run.problems, running.report_loss(log, std::nullopt));
    } else {
        BodyProcess body(main);
        run_watched(run, timeout_s, {body, log, &running, false});
        if (!run.scheduler_lost) append(run.problems, running.stop(log));
    }
    run.scheduler = running.ops();  // after a loss: the name the kernel gave in its report
}

}  // namespace

GuardedRun run_guarded(const Scheduler* s, double timeout_s, const BodyMain& main) {
    KernelLog log;
    auto taint = read_taint();
    GuardedRun run;
    if (!s || s->is_eevdf()) {
        BodyProcess body(main);
        run_watched(run, timeout_s, {body, log, nullptr, false});
    } else if (s->spec.kind == SchedulerSpec::Kind::KernelBuiltin) {
        run_builtin(run, *s, timeout_s, main, log);
    } else {
        run_sched_ext(run, *s, timeout_s, main, log);
    }
    if (run.skipped) return run;

    log.read_new();
    for (const auto& p : kernel_problems(log.records()))
        run.problems.push_back("the kernel reported a problem during the test:\n  " + p);
    if (auto now = read_taint(); now & ~taint)
        run.problems.push_back("the kernel became tainted during the test: " +
                               describe_new_taint(taint, now));
    return run;
}

namespace {

struct GuestOutcome {
    AssertResult result;
    std::string scheduler;  // "eevdf", or the ops name the kernel showed
};

GuestOutcome run_test(const TestCase& t) {
    const Scheduler* s = t.attrs.scheduler ? t.attrs.scheduler->scheduler() : nullptr;
    auto run =
        run_guarded(s, t.attrs.timeout_s, [&t](int result_fd) { run_body_child(t, result_fd); });
    if (run.skipped) return {AssertResult::skip(*run.skipped), run.scheduler};
    auto result = run.body.value_or(AssertResult::pass());
    for (const auto& p : run.problems) result.expect(false, p);
    return {result, run.scheduler};
}

}  // namespace

std::string guest_binary_path(std::string_view host_or_name) {
    return "/include-files/" + fs::path(host_or_name).filename().string();
}

nlohmann::json result_to_json(const AssertResult& r) {
    static constexpr const char* names[] = {"pass", "fail", "skip"};
    return {{"status", names[int(r.status())]}, {"messages", r.messages()}};
}

int run_in_guest(const std::string& name) {
    const TestCase* test = nullptr;
    for (const auto& t : registered_tests())
        if (t.name == name) test = &t;
    nlohmann::json result;
    if (!test) {
        result = result_to_json(AssertResult::fail("no test named " + quoted(name)));
    } else {
        try {
            auto outcome = run_test(*test);
            result = result_to_json(outcome.result);
            result["scheduler"] = outcome.scheduler;
        } catch (const std::exception& e) {
            result = result_to_json(AssertResult::fail("the test threw: " + std::string(e.what())));
            auto s = test->attrs.scheduler ? test->attrs.scheduler->scheduler() : nullptr;
            result["scheduler"] = s ? std::string(s->name) : "eevdf";
        }
    }
    const char* path = std::getenv("KTSTR_RESULT_FILE");
    std::ofstream(path && *path ? path : "/run/ktstr-result.json") << result.dump() << "\n";
    return result["status"] == "fail" ? 1 : 0;
}

}  // namespace ktstr::suite
