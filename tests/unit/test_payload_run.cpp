// The payload runtime on the host: plain POSIX, so no VM is needed here.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "../common/generated_stream.hpp"
#include "ktstr/error.hpp"
#include "ktstr/fd.hpp"
#include "ktstr/payload_run.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::ContainsSubstring;
using ktstr::Output;
using ktstr::PayloadRun;
using Clock = std::chrono::steady_clock;

namespace {

PayloadRun shell(const std::string& script) {
    return PayloadRun("sh").args({"-c", script});
}

std::vector<ktstr::ProcessEntry> group_members(pid_t pgid) {
    std::vector<ktstr::ProcessEntry> members;
    for (const auto& p : ktstr::process_table())
        if (p.pgrp == pgid) members.push_back(p);
    return members;
}

// Orphans go to the nearest subreaper; the host's PID 1 may never reap them, so a test
// that checks for leftovers adopts its payload's orphans and reaps them, as the guest init
// does. Only while no handle is live: reaping any child could take a leader's status.
struct OrphanReaper {
    OrphanReaper() { ::prctl(PR_SET_CHILD_SUBREAPER, 1); }
    // Adopted processes that left the group (stress-ng's fork workers call setsid) end on
    // their own; wait for them so none dies later as a zombie of another test.
    ~OrphanReaper() {
        ::prctl(PR_SET_CHILD_SUBREAPER, 0);
        auto until = Clock::now() + 2s;
        while (!reap() && Clock::now() < until) std::this_thread::sleep_for(10ms);
    }
    // True when no child is left.
    static bool reap() {
        pid_t reaped;
        while ((reaped = ::waitpid(-1, nullptr, WNOHANG)) > 0) {
        }
        return reaped < 0 && errno == ECHILD;
    }
};

bool group_gone_within(pid_t pgid, std::chrono::milliseconds limit) {
    auto until = Clock::now() + limit;
    while (OrphanReaper::reap(), !group_members(pgid).empty()) {
        if (Clock::now() >= until) return false;
        std::this_thread::sleep_for(10ms);
    }
    return true;
}

bool process_gone_within(pid_t pid, std::chrono::milliseconds limit) {
    auto until = Clock::now() + limit;
    while (OrphanReaper::reap(), ::kill(pid, 0) == 0) {
        if (Clock::now() >= until) return false;
        std::this_thread::sleep_for(10ms);
    }
    return errno == ESRCH;
}

int open_fd_count() {
    int n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
    return n;
}

int zombie_children() {
    int n = 0;
    for (const auto& p : ktstr::process_table())
        if (p.ppid == ::getpid() && p.state == 'Z') ++n;
    return n;
}

// Waits for a payload to write a pid into `file` (its way of saying it is ready).
pid_t wait_for_pid_file(const std::filesystem::path& file) {
    auto until = Clock::now() + 5s;
    while (Clock::now() < until) {
        std::ifstream in(file);
        pid_t pid = 0;
        if (in >> pid && pid > 0) return pid;
        std::this_thread::sleep_for(5ms);
    }
    FAIL("payload never wrote " << file);
    return -1;
}

using ktstr::testing::generated_stream;

void write_file(const std::filesystem::path& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
}

// A writable cgroup v2 directory of our own, or the reason there is none.
struct TestCgroup {
    std::filesystem::path dir;
    std::string why_not;

    TestCgroup() {
        auto root = cgroup2_mount();
        if (!root) {
            why_not = "no cgroup2 file system is mounted";
            return;
        }
        auto candidate = *root / ("ktstr-test-" + std::to_string(::getpid()));
        if (::mkdir(candidate.c_str(), 0755) != 0) {
            why_not = "cannot create a cgroup under " + root->string() + ": " + strerror(errno);
            return;
        }
        dir = candidate;
    }
    ~TestCgroup() {
        if (dir.empty()) return;
        for (int i = 0; i < 100 && ::rmdir(dir.c_str()) != 0 && errno == EBUSY; ++i)
            std::this_thread::sleep_for(10ms);
    }

    // /sys/fs/cgroup itself, or where a hybrid set-up mounts cgroup2 (/sys/fs/cgroup/unified).
    static std::optional<std::filesystem::path> cgroup2_mount() {
        std::ifstream mounts("/proc/self/mounts");
        std::optional<std::filesystem::path> found;
        for (std::string line; std::getline(mounts, line);) {
            std::istringstream fields(line);
            std::string source, target, type;
            fields >> source >> target >> type;
            if (type != "cgroup2") continue;
            if (target == "/sys/fs/cgroup" || !found) found = target;
        }
        return found;
    }
};

}  // namespace

TEST_CASE("a payload's exit code is reported", "[payload]") {
    for (int code : {0, 1, 42}) {
        auto report = shell("echo out; echo err >&2; exit " + std::to_string(code)).run();
        CHECK(report.exit_code == code);
        CHECK_FALSE(report.signal);
        CHECK_FALSE(report.timed_out);
        CHECK(report.success() == (code == 0));
        CHECK(report.out.bytes == "out\n");
        CHECK(report.err.bytes == "err\n");
    }
}

TEST_CASE("death by a signal is reported as the signal, never as an exit code", "[payload]") {
    auto report = shell("kill -TERM $$").run();
    CHECK(report.signal == SIGTERM);
    CHECK_FALSE(report.exit_code);
    CHECK_FALSE(report.success());
    CHECK_THAT(report.describe(), ContainsSubstring("killed by signal 15"));
}

TEST_CASE("a timeout kills the payload and says so", "[payload]") {
    auto started = Clock::now();
    auto report = PayloadRun("sleep").arg("1000").timeout(200ms).run();
    CHECK(report.timed_out);
    CHECK(report.signal == SIGKILL);
    CHECK_FALSE(report.success());
    CHECK(report.wall_time >= 200ms);
    CHECK(Clock::now() - started < 3s);
    CHECK_THAT(report.describe(), ContainsSubstring("timed out"));
}

TEST_CASE("waits report a running payload as still running", "[payload]") {
    auto handle = PayloadRun("sleep").arg("1000").spawn();
    CHECK(handle.pgid() == handle.pid());
    CHECK_FALSE(handle.try_wait());
    CHECK_FALSE(handle.wait_for(50ms));
    handle.kill();
    auto exit = handle.wait();
    CHECK(exit.signal == SIGKILL);
    CHECK(handle.try_wait()->signal == SIGKILL);
}

TEST_CASE("killing a pipeline ends the capture promptly", "[payload]") {
    OrphanReaper reaper;
    auto handle = shell("sleep 1000 | cat").spawn();
    CHECK_FALSE(handle.wait_for(100ms));

    auto killed = Clock::now();
    handle.kill();
    auto report = handle.wait_and_capture();
    // A hang would last the sleep's 1000 s; 5 s leaves room for a loaded machine.
    CHECK(Clock::now() - killed < 5s);
    CHECK(report.signal == SIGKILL);
    CHECK(report.processes_killed >= 2);
    CHECK_FALSE(report.output_held_open);
    CHECK(group_gone_within(handle.pgid(), 1s));
}

TEST_CASE("a grandchild holding stdout open does not hang the capture", "[payload]") {
    auto started = Clock::now();
    auto report = shell("(sleep 1000 &) ; echo hi").run();
    CHECK(Clock::now() - started < 5s);  // a hang would last the sleep's 1000 s
    CHECK(report.exit_code == 0);
    CHECK(report.out.bytes == "hi\n");
    CHECK(report.processes_killed >= 1);  // the sleep, in the payload's group
    CHECK_FALSE(report.output_held_open);
}

TEST_CASE("terminate stops a payload with SIGTERM", "[payload]") {
    auto handle = PayloadRun("sleep").arg("1000").spawn();
    auto exit = handle.terminate(5s);
    CHECK(exit.signal == SIGTERM);
}

TEST_CASE("terminate escalates to SIGKILL after the grace", "[payload]") {
    ktstr::TempDir tmp;
    auto ready = tmp.path() / "ready";
    auto handle =
        shell("trap '' TERM; echo $$ > '" + ready.string() + "'; while :; do sleep 0.05; done")
            .spawn();
    wait_for_pid_file(ready);

    auto asked = Clock::now();
    auto exit = handle.terminate(300ms);
    auto took = Clock::now() - asked;
    CHECK(exit.signal == SIGKILL);
    CHECK(took >= 300ms);
    CHECK(took < 2s);
}

TEST_CASE("an exception with a live handle leaves nothing running", "[payload]") {
    OrphanReaper reaper;
    pid_t pid = -1;
    pid_t pgid = -1;
    try {
        auto handle = shell("sleep 1000 | cat").spawn();
        pid = handle.pid();
        pgid = handle.pgid();
        throw std::runtime_error("test body failed");
    } catch (const std::runtime_error&) {
    }
    CHECK(::kill(pid, 0) == -1);
    CHECK(errno == ESRCH);
    CHECK(group_gone_within(pgid, 1s));
}

TEST_CASE("uses_parent_pgrp kills the leader only and says so", "[payload]") {
    OrphanReaper reaper;
    ktstr::TempDir tmp;
    auto child_file = tmp.path() / "child";
    auto handle =
        shell("sleep 1000 >/dev/null 2>&1 & echo $! > '" + child_file.string() + "'; wait")
            .uses_parent_pgrp()
            .spawn();
    CHECK(handle.pgid() == ::getpgrp());
    pid_t child = wait_for_pid_file(child_file);

    handle.kill();
    auto report = handle.wait_and_capture();
    CHECK(report.signal == SIGKILL);
    CHECK(report.descendants_may_remain);
    CHECK(report.processes_killed == 1);
    CHECK(::kill(child, 0) == 0);  // the pid-only kill left it, as documented

    ::kill(child, SIGKILL);
    CHECK(process_gone_within(child, 1s));
}

TEST_CASE("stress-ng --fork: nothing of the group remains 1 s after kill()", "[payload]") {
    OrphanReaper reaper;
    auto handle = PayloadRun("stress-ng").args({"--fork", "4", "--timeout", "60"}).spawn();
    auto until = Clock::now() + 10s;  // let it fork its workers (slow on a loaded host)
    while (group_members(handle.pgid()).size() < 2 && Clock::now() < until)
        std::this_thread::sleep_for(10ms);
    REQUIRE(group_members(handle.pgid()).size() > 1);

    handle.kill();
    auto report = handle.wait_and_capture();
    CHECK(report.signal == SIGKILL);
    CHECK(report.processes_killed > 1);
    CHECK(group_gone_within(handle.pgid(), 1s));
}

TEST_CASE("kill() returns once every process of the group has ended", "[payload]") {
    OrphanReaper reaper;
    ktstr::TempDir tmp;
    auto ready = tmp.path() / "ready";
    auto handle =
        shell("sleep 1000 & sleep 1000 & echo $$ > '" + ready.string() + "'; wait").spawn();
    wait_for_pid_file(ready);
    REQUIRE(group_members(handle.pgid()).size() == 3);

    handle.kill();
    for (const auto& p : group_members(handle.pgid())) CHECK(p.state == 'Z');  // none runs
    auto report = handle.wait_and_capture();
    CHECK(report.processes_killed == 3);
    CHECK(report.survivors == 0);
}

// Orphans come to this test (OrphanReaper), so every process of the payload is reaped here or
// by the handle: those that died of SIGKILL are exactly the processes the kill reached.
TEST_CASE("a fork bomb's kill count is exact", "[payload][cgroup]") {
    TestCgroup cgroup;
    if (cgroup.dir.empty()) SKIP(cgroup.why_not);
    OrphanReaper reaper;
    for (int round = 0; round < 5; ++round) {
        auto handle = PayloadRun("stress-ng")
                          .args({"--fork", "8", "--timeout", "60"})
                          .cgroup(cgroup.dir)
                          .spawn();
        std::this_thread::sleep_for(std::chrono::milliseconds(60 * round));
        handle.kill();
        auto report = handle.wait_and_capture();

        int died_of_sigkill = report.signal == SIGKILL;
        siginfo_t info{};
        while (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG) == 0 && info.si_pid != 0) {
            if (info.si_code == CLD_KILLED && info.si_status == SIGKILL) ++died_of_sigkill;
            info = {};
        }
        CHECK(info.si_pid == 0);  // no child left running
        CHECK(report.processes_killed == died_of_sigkill);
        CHECK(report.survivors == 0);
    }
}

TEST_CASE("a process entry reads a name with spaces and parentheses", "[payload]") {
    ktstr::TempDir tmp;
    auto odd = tmp.path() / "a b) (c";
    std::filesystem::create_symlink("/bin/sleep", odd);
    auto handle = PayloadRun(odd.string()).arg("1000").spawn();
    std::optional<ktstr::ProcessEntry> entry;
    for (int i = 0; i < 200 && !(entry = ktstr::process_entry(handle.pid()),
                               entry && entry->name == "a b) (c");
         ++i)
        std::this_thread::sleep_for(5ms);  // the name changes at exec
    REQUIRE(entry);
    CHECK(entry->name == "a b) (c");
    CHECK(entry->pgrp == handle.pid());
    CHECK(entry->ppid == ::getpid());
    CHECK(entry->alive());
    CHECK_FALSE(entry->kernel_thread);
    CHECK(entry->start_time > 0);
    handle.kill();
}

TEST_CASE("20 spawn/kill cycles leave no zombie and no leaked fd", "[payload]") {
    int fds_before = open_fd_count();
    for (int cycle = 0; cycle < 20; ++cycle) {
        auto handle = PayloadRun("stress-ng").args({"--fork", "8", "--timeout", "60"}).spawn();
        std::this_thread::sleep_for(20ms);
        handle.kill();
        CHECK(handle.wait_and_capture().signal == SIGKILL);
    }
    CHECK(open_fd_count() == fds_before);
    CHECK(zombie_children() == 0);
}

TEST_CASE("20 MB on stdout and stderr at once arrive byte-exact", "[payload]") {
    ktstr::TempDir tmp;
    auto expected_out = generated_stream(20 << 20, 1);
    auto expected_err = generated_stream(20 << 20, 2);
    write_file(tmp.path() / "out", expected_out);
    write_file(tmp.path() / "err", expected_err);

    auto report = shell("cat out & cat err >&2; wait").working_dir(tmp.path()).run();
    CHECK(report.exit_code == 0);
    CHECK_FALSE(report.out.truncated);
    CHECK_FALSE(report.err.truncated);
    CHECK(report.out.bytes.size() == expected_out.size());
    CHECK(report.err.bytes.size() == expected_err.size());
    CHECK(report.out.bytes == expected_out);
    CHECK(report.err.bytes == expected_err);
}

TEST_CASE("output past the capture limit is dropped and marked truncated", "[payload]") {
    auto report = PayloadRun("head").args({"-c", "5000", "/dev/zero"}).capture_limit(1000).run();
    CHECK(report.exit_code == 0);
    CHECK(report.out.bytes == std::string(1000, '\0'));
    CHECK(report.out.truncated);
    CHECK_FALSE(report.err.truncated);
}

TEST_CASE("a missing binary is named with the PATH searched", "[payload]") {
    auto run = PayloadRun("ktstr-no-such-binary").env("PATH", "/nowhere:/usr/bin");
    CHECK_THROWS_WITH(run.spawn(),
                      "cannot find payload binary 'ktstr-no-such-binary' on PATH "
                      "'/nowhere:/usr/bin'");
}

TEST_CASE("a failed exec reports errno, not exit code 127", "[payload]") {
    ktstr::TempDir tmp;
    auto script = tmp.path() / "not-executable";
    write_file(script, "#!/bin/sh\n");
    try {
        PayloadRun(script.string()).spawn();
        FAIL("spawn succeeded");
    } catch (const ktstr::SysError& e) {
        CHECK(e.code() == EACCES);
        CHECK_THAT(e.what(), ContainsSubstring("cannot execute '" + script.string() + "'"));
    }
}

TEST_CASE("a bad working directory is named", "[payload]") {
    CHECK_THROWS_WITH(PayloadRun("true").working_dir("/nonexistent-ktstr").spawn(),
                      "cannot change to directory '/nonexistent-ktstr': No such file or directory");
}

TEST_CASE("arguments, environment, working dir and stdin reach the payload", "[payload]") {
    ktstr::TempDir tmp;
    ::setenv("KTSTR_TEST_INHERITED", "ours", 1);
    auto report = shell("pwd; echo \"$1 $FOO ${KTSTR_TEST_INHERITED-unset}\"; cat")
                      .arg("sh")
                      .arg("first")
                      .env("FOO", "bar")
                      .unset_env("KTSTR_TEST_INHERITED")
                      .working_dir(tmp.path())
                      .stdin_bytes(std::string("in\0put", 6))
                      .run();
    ::unsetenv("KTSTR_TEST_INHERITED");
    CHECK(report.exit_code == 0);
    auto cwd = std::filesystem::canonical(tmp.path()).string();
    CHECK(report.out.bytes == cwd + "\nfirst bar unset\n" + std::string("in\0put", 6));

    auto bare = PayloadRun("env").clear_env().env("ONLY", "1").run();
    CHECK(bare.out.bytes == "ONLY=1\n");

    auto no_args = shell("unused").clear_args().arg("-c").arg("echo $#").run();
    CHECK(no_args.out.bytes == "0\n");
}

TEST_CASE("stdin is /dev/null by default and output can go to a given fd", "[payload]") {
    ktstr::TempDir tmp;
    auto file = ktstr::Fd::open((tmp.path() / "out").string(), O_WRONLY | O_CREAT | O_TRUNC);
    auto report = shell("cat; echo to-file").stdout_to(Output::to_fd(file.get())).run();
    CHECK(report.exit_code == 0);
    CHECK(report.out.bytes.empty());
    std::ifstream in(tmp.path() / "out");
    CHECK(std::string(std::istreambuf_iterator<char>(in), {}) == "to-file\n");
}

TEST_CASE("a setsid'd holder of stdout ends the capture at the drain bound", "[payload]") {
    OrphanReaper reaper;
    ktstr::TempDir tmp;
    auto holder_file = tmp.path() / "holder";
    auto started = Clock::now();
    auto report = shell("setsid sh -c 'echo $$ > " + holder_file.string() +
                        "; exec sleep 1000' & while [ ! -s " + holder_file.string() +
                        " ]; do sleep 0.01; done; echo started")
                      .drain_bound(200ms)
                      .run();
    CHECK(Clock::now() - started < 2s);
    CHECK(report.exit_code == 0);
    CHECK(report.out.bytes == "started\n");
    CHECK(report.output_held_open);

    pid_t holder = wait_for_pid_file(holder_file);
    CHECK(::kill(holder, 0) == 0);  // out of the group's reach without a cgroup
    ::kill(holder, SIGKILL);
    CHECK(process_gone_within(holder, 1s));
}

TEST_CASE("a payload joins its cgroup before exec", "[payload][cgroup]") {
    TestCgroup cgroup;
    if (cgroup.dir.empty()) SKIP(cgroup.why_not);

    auto report = PayloadRun("cat").arg("/proc/self/cgroup").cgroup(cgroup.dir).run();
    CHECK(report.exit_code == 0);
    CHECK_THAT(report.out.bytes, ContainsSubstring("0::/" + cgroup.dir.filename().string()));
}

TEST_CASE("a process escaping the group is killed through the cgroup", "[payload][cgroup]") {
    OrphanReaper reaper;
    TestCgroup cgroup;
    if (cgroup.dir.empty()) SKIP(cgroup.why_not);
    ktstr::TempDir tmp;
    auto holder_file = tmp.path() / "holder";

    auto started = Clock::now();
    auto report = shell("setsid sh -c 'echo $$ > " + holder_file.string() +
                        "; exec sleep 1000' & while [ ! -s " + holder_file.string() +
                        " ]; do sleep 0.01; done; echo started")
                      .cgroup(cgroup.dir)
                      .drain_bound(5s)
                      .run();
    CHECK(Clock::now() - started < 2s);
    CHECK(report.out.bytes == "started\n");
    CHECK(report.escaped == 1);
    CHECK_FALSE(report.output_held_open);
    CHECK(process_gone_within(wait_for_pid_file(holder_file), 1s));
}

TEST_CASE("a cgroup that cannot be joined is named", "[payload][cgroup]") {
    CHECK_THROWS_WITH(PayloadRun("true").cgroup("/nonexistent-ktstr-cgroup").spawn(),
                      ContainsSubstring("cannot open cgroup '/nonexistent-ktstr-cgroup'"));
}
