// Tests of the harness's scheduler lifecycle, each in its own VM. Some tests here fail on
// purpose: a scheduler that stalls, exits or raises an error must fail its test with the
// kernel's reason. CMakeLists.txt next to this file runs each one and checks how it ended.
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <variant>

#include <ktstr/test.hpp>

#include "../../../src/suite/scheduler_run.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ktstr::AssertResult;
using ktstr::PayloadRun;
using ktstr::SchedulerSpec;
namespace suite = ktstr::suite;

namespace {

// The fixture scheduler, found by Discover at the top of the build tree, with `args`.
constexpr ktstr::Scheduler fixture_with(ktstr::Words args) {
    return {.name = "ktstr_fixture", .spec = SchedulerSpec::discover("scx_fixture"), .args = args};
}

inline constexpr auto fixture = fixture_with({"--timeout-ms", "5000"});
inline constexpr auto stalling = fixture_with({"--fault", "stall", "--timeout-ms", "2000"});
inline constexpr auto exiting = fixture_with({"--fault", "exit-after=3"});
inline constexpr auto stubborn = fixture_with({"--fault", "ignore-stop"});
// Holds a CPU for 4 s once a task named stallme runs; the sched_ext watchdog stays at 30 s.
inline constexpr auto locking_up =
    fixture_with({"--fault", "lockup=4000", "--timeout-ms", "30000"});
inline constexpr auto erring = fixture_with({"--fault", "error-after-attach"});

// Enable runs before the body, disable after it: disable fails unless the body has written
// its mark, and prints the order for the host to check (it must have run at all).
inline constexpr ktstr::Scheduler ordered{
    .name = "ordered",
    .spec = SchedulerSpec::kernel_builtin(
        {"echo enable > /tmp/ktstr-order"},
        {"grep -qx body /tmp/ktstr-order", "echo disable >> /tmp/ktstr-order",
         "echo \"order: $(tr '\\n' ' ' < /tmp/ktstr-order)\""}),
};
inline constexpr ktstr::Scheduler broken{
    .name = "broken",
    .spec = SchedulerSpec::kernel_builtin({"echo enable-fails-here >&2; exit 3"}, {"true"}),
};

// Programs that are no scheduler at all: one exits at once, one never attaches.
inline constexpr ktstr::Scheduler quitter{
    .name = "quitter",
    .spec = SchedulerSpec::path("/usr/bin/env"),
    .args = {"sh", "-c", "echo cannot load: the kernel said no >&2; exit 4"},
};
inline constexpr ktstr::Scheduler sleeper{
    .name = "sleeper",
    .spec = SchedulerSpec::path("/usr/bin/sleep"),
    .args = {"600"},
};

inline constexpr auto fixture_payload = ktstr::Payload::for_scheduler(fixture);
inline constexpr auto stalling_payload = ktstr::Payload::for_scheduler(stalling);
inline constexpr auto exiting_payload = ktstr::Payload::for_scheduler(exiting);
inline constexpr auto stubborn_payload = ktstr::Payload::for_scheduler(stubborn);
inline constexpr auto locking_up_payload = ktstr::Payload::for_scheduler(locking_up);
inline constexpr auto erring_payload = ktstr::Payload::for_scheduler(erring);
inline constexpr auto ordered_payload = ktstr::Payload::for_scheduler(ordered);
inline constexpr auto broken_payload = ktstr::Payload::for_scheduler(broken);
inline constexpr auto quitter_payload = ktstr::Payload::for_scheduler(quitter);
inline constexpr auto sleeper_payload = ktstr::Payload::for_scheduler(sleeper);
inline constexpr auto stress =
    ktstr::binary_payload("stress-ng", {.checks = {ktstr::Check::exit_code_is(0)}});

bool has(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

// What the body does while the harness should be failing it: a long wait it never finishes.
AssertResult outlive_the_scheduler() {
    auto report = PayloadRun("sleep").arg("90").run();
    return AssertResult::fail("the body outlived its scheduler's fault: sleep " +
                              report.describe());
}

}  // namespace

// --- Passing tests ------------------------------------------------------------------------

KTSTR_TEST(eevdf_baseline, .payload = &stress, .timeout_s = 120) {
    auto report = ctx.payload(stress).args({"--cpu", "2", "--timeout", "2s"}).run();
    auto state = suite::read_sched_ext("state");
    return ktstr::check_payload(stress, report)
        .expect(state == "disabled", "sched_ext state is " + state + " under EEVDF");
}

KTSTR_TEST(fixture_runs_stress, .scheduler = &fixture_payload, .payload = &stress,
           .timeout_s = 180) {
    auto report = ctx.payload(stress).args({"--cpu", "2", "--fork", "2", "--timeout", "3s"}).run();
    auto ops = suite::attached_ops();
    return ktstr::check_payload(stress, report)
        .expect(ops == "ktstr_fixture", "attached ops: " + ops);
}

// The harness's own start refuses a second scheduler; the binary itself, started past that
// check, gets EBUSY from the kernel, and the classifier names the scheduler in the way.
KTSTR_TEST(second_scheduler_is_busy, .scheduler = &fixture_payload, .timeout_s = 120) {
    suite::KernelLog log;
    auto start = suite::RunningScheduler::start(fixture, log);
    auto* refused = std::get_if<suite::AttachFailure>(&start);
    auto result = AssertResult::pass();
    result.expect(refused != nullptr, "a second ktstr_fixture was attached");
    if (refused) {
        std::cout << "harness: " << suite::attach_error_kind_name(refused->error.kind) << ": "
                  << refused->error.reason << "\n";
        result.expect(refused->error.kind == suite::AttachErrorKind::Busy,
                      "the harness's start said: " + refused->error.reason);
        result.expect(has(refused->error.reason, "'ktstr_fixture'"),
                      "the refusal does not name the attached scheduler: " + refused->error.reason);
    }

    auto report = ctx.payload(fixture_payload).timeout(60s).run();
    log.read_new();
    auto error = suite::classify_attach_failure(report.out.bytes + report.err.bytes, log.records(),
                                                suite::attached_ops());
    std::cout << "binary: " << suite::attach_error_kind_name(error.kind) << ": " << error.reason
              << "\n";
    result.expect(report.exit_code == 1, "the second scx_fixture " + report.describe());
    result.expect(error.kind == suite::AttachErrorKind::Busy,
                  "classified as " + std::string(suite::attach_error_kind_name(error.kind)) + ": " +
                      error.reason);
    result.expect(has(error.reason, "'ktstr_fixture'"),
                  "the classification does not name the attached scheduler: " + error.reason);
    return result;
}

KTSTR_TEST(builtin_runs_in_order, .scheduler = &ordered_payload, .timeout_s = 60) {
    std::ifstream in("/tmp/ktstr-order");
    std::string before((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream("/tmp/ktstr-order", std::ios::app) << "body\n";
    return AssertResult::pass().expect(before == "enable\n",
                                       "before the body, the order file held: " + before);
}

// --- Tests that must fail, and how ------------------------------------------------------

// The shell names itself stallme (one thread, so its comm is the process's) and spins; the
// fixture never runs a task of that name, so the watchdog ejects it after 2 s.
KTSTR_TEST(stall_is_caught, .scheduler = &stalling_payload, .timeout_s = 120) {
    auto report = PayloadRun("sh")
                      .args({"-c", "printf stallme > /proc/self/comm; while :; do :; done"})
                      .timeout(90s)
                      .run();
    return AssertResult::fail("the stalled task ran to its end: " + report.describe());
}

KTSTR_TEST(loader_exit_is_caught, .scheduler = &exiting_payload, .timeout_s = 120) {
    return outlive_the_scheduler();
}

KTSTR_TEST(error_after_attach_is_caught, .scheduler = &erring_payload, .timeout_s = 120) {
    return outlive_the_scheduler();
}

KTSTR_TEST(killed_scheduler_is_named, .scheduler = &fixture_payload, .timeout_s = 120) {
    for (const auto& p : fs::directory_iterator("/proc")) {
        std::ifstream comm(p.path() / "comm");
        std::string name;
        if (std::getline(comm, name) && name == "scx_fixture")
            ::kill(std::stoi(p.path().filename().string()), SIGKILL);
    }
    return outlive_the_scheduler();
}

KTSTR_TEST(builtin_enable_failure, .scheduler = &broken_payload, .timeout_s = 60) {
    return AssertResult::pass();
}

// The scheduler stops cleanly; the kernel's taint still fails the test. (User space may add
// taint bits: this is the one change a test can make on purpose.)
KTSTR_TEST(taint_fails_the_test, .scheduler = &fixture_payload, .timeout_s = 60) {
    std::ofstream("/proc/sys/kernel/tainted") << "64" << std::flush;
    return AssertResult::pass();
}

// The body passes; the scheduler ignores SIGTERM when the harness stops it, so it is killed
// with SIGKILL, and that fails the test.
KTSTR_TEST(stop_ignored_is_killed, .scheduler = &stubborn_payload, .timeout_s = 60) {
    return AssertResult::pass();
}

// A real kernel problem: the scheduler holds a CPU with interrupts off for 4 s, past the
// soft-lockup threshold (2 s with watchdog_thresh at 1), so the kernel prints "BUG: soft
// lockup" and taints itself L, or sched_ext ejects the scheduler for the lockup. The body
// itself passes; either must fail it.
KTSTR_TEST(lockup_is_a_kernel_problem, .scheduler = &locking_up_payload, .timeout_s = 60) {
    std::ofstream("/proc/sys/kernel/watchdog_thresh") << "1" << std::flush;
    PayloadRun("sh")
        .args({"-c", "printf stallme > /proc/self/comm; while :; do :; done"})
        .timeout(10s)
        .run();
    // Still here: the scheduler was not ejected. What the kernel saw, for the record.
    auto kernel =
        PayloadRun("sh")
            .args({"-c", "cat /proc/sys/kernel/tainted; dmesg | grep -iE 'lockup|sched_ext'"})
            .run();
    std::cout << "after the lockup fault: taint " << kernel.out.bytes << std::flush;
    return AssertResult::pass();
}

KTSTR_TEST(exit_before_attaching_is_caught, .scheduler = &quitter_payload, .timeout_s = 60) {
    return AssertResult::pass();
}

KTSTR_TEST(no_attach_in_time_is_caught, .scheduler = &sleeper_payload, .timeout_s = 60) {
    return AssertResult::pass();
}
