// Run on a kernel without sched_ext (Debian 12's own 6.1): EEVDF tests run and pass, scheduler
// tests are skipped with the reason. old_kernel.sh boots it and checks both.
#include <sys/utsname.h>

#include <string>

#include <ktstr/test.hpp>

#include "../../../src/suite/scheduler_run.hpp"

namespace {

inline constexpr ktstr::Scheduler fixture{
    .name = "ktstr_fixture",
    .spec = ktstr::SchedulerSpec::discover("scx_fixture"),
    .args = {"--timeout-ms", "5000"},
};
inline constexpr auto fixture_payload = ktstr::Payload::for_scheduler(fixture);
inline constexpr auto stress =
    ktstr::binary_payload("stress-ng", {.checks = {ktstr::Check::exit_code_is(0)}});

}  // namespace

KTSTR_TEST(eevdf_runs_on_old_kernel, .payload = &stress, .timeout_s = 120) {
    utsname u{};
    ::uname(&u);
    std::string release = u.release;
    auto report = ctx.payload(stress).args({"--cpu", "2", "--timeout", "2s"}).run();
    return ktstr::check_payload(stress, report)
        .expect(release.starts_with("6.1."), "the guest runs kernel " + release + ", not 6.1")
        .expect(!ktstr::suite::kernel_has_sched_ext(), "kernel " + release + " has sched_ext");
}

KTSTR_TEST(fixture_skips_on_old_kernel, .scheduler = &fixture_payload, .timeout_s = 60) {
    return ktstr::AssertResult::fail("the body ran, on a kernel without sched_ext");
}
