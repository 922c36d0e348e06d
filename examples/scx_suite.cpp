// An example suite for sched_ext schedulers: the project's fixture scheduler and the kernel's
// own example schedulers (scx_simple, scx_central). The harness attaches each before the body
// runs (a Scheduler's name is its ops name, as /sys/kernel/sched_ext/root/ops shows it), fails
// the test with the kernel's reason if the scheduler dies or is ejected while the body runs,
// and stops it afterwards; the result line names the scheduler that ran.
#include <ktstr/test.hpp>

#include <fstream>

namespace {

using ktstr::SchedulerSpec;

inline constexpr ktstr::Scheduler fixture{
    .name = "ktstr_fixture",
    .spec = SchedulerSpec::discover("scx_fixture"),
    .args = {"--timeout-ms", "5000"},
};
inline constexpr ktstr::Scheduler scx_simple{
    .name = "simple",
    .spec = SchedulerSpec::discover("scx_simple"),
};
inline constexpr ktstr::Scheduler scx_central{
    .name = "central",
    .spec = SchedulerSpec::discover("scx_central"),
};

inline constexpr auto fixture_payload = ktstr::Payload::for_scheduler(fixture);
inline constexpr auto simple_payload = ktstr::Payload::for_scheduler(scx_simple);
inline constexpr auto central_payload = ktstr::Payload::for_scheduler(scx_central);
inline constexpr auto stress =
    ktstr::binary_payload("stress-ng", {.checks = {ktstr::Check::exit_code_is(0)}});

std::string read_line(const char* path) {
    std::ifstream in(path);
    std::string s;
    std::getline(in, s);
    return s;
}

// Runs stress-ng under the attached scheduler; the body only checks what the harness does
// not: that `ops` is the scheduler sched_ext shows.
ktstr::AssertResult stress_under(ktstr::Ctx& ctx, const std::string& ops) {
    auto report = ctx.payload(stress).args({"--cpu", "2", "--fork", "2", "--timeout", "3s"}).run();
    auto attached = read_line("/sys/kernel/sched_ext/root/ops");
    return ktstr::check_payload(stress, report)
        .expect(attached.rfind(ops, 0) == 0, "attached ops: " + attached);
}

}  // namespace

KTSTR_TEST(eevdf_baseline, .payload = &stress, .timeout_s = 120) {
    auto report = ctx.payload(stress).args({"--cpu", "2", "--timeout", "2s"}).run();
    return ktstr::check_payload(stress, report)
        .expect(read_line("/sys/kernel/sched_ext/state") == "disabled",
                "a sched_ext scheduler is attached");
}

KTSTR_TEST(fixture_runs_stress, .scheduler = &fixture_payload, .payload = &stress,
           .timeout_s = 180) {
    return stress_under(ctx, "ktstr_fixture");
}

KTSTR_TEST(scx_simple_runs_stress, .scheduler = &simple_payload, .payload = &stress,
           .timeout_s = 180) {
    return stress_under(ctx, "simple");
}

KTSTR_TEST(scx_central_runs_stress, .scheduler = &central_payload, .payload = &stress,
           .timeout_s = 180) {
    return stress_under(ctx, "central");
}
