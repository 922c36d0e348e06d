// An example suite for sched_ext schedulers: the project's fixture scheduler
// and the kernel's own example schedulers (scx_simple, scx_central), each
// attached before the body runs and checked to still be attached after it.
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
inline constexpr auto stress = ktstr::binary_payload("stress-ng", {.checks = {ktstr::Check::exit_code_is(0)}});

std::string read_line(const char* path) {
    std::ifstream in(path);
    std::string s;
    std::getline(in, s);
    return s;
}

// Runs stress-ng and checks that `ops` stayed the attached scheduler throughout.
ktstr::AssertResult stress_under(ktstr::Ctx& ctx, const std::string& ops) {
    auto report = ctx.payload(stress).args({"--cpu", "2", "--fork", "2", "--timeout", "3s"}).run();
    auto result = ktstr::check_payload(stress, report);
    result.expect(read_line("/sys/kernel/sched_ext/state") == "enabled",
                  "sched_ext state is " + read_line("/sys/kernel/sched_ext/state"));
    result.expect(read_line("/sys/kernel/sched_ext/root/ops").rfind(ops, 0) == 0,
                  "attached ops: " + read_line("/sys/kernel/sched_ext/root/ops"));
    return result;
}

}  // namespace

KTSTR_TEST(eevdf_baseline, .payload = &stress, .timeout_s = 120) {
    auto report = ctx.payload(stress).args({"--cpu", "2", "--timeout", "2s"}).run();
    return ktstr::check_payload(stress, report).expect(
        read_line("/sys/kernel/sched_ext/state") == "disabled", "a sched_ext scheduler is attached");
}

KTSTR_TEST(fixture_runs_stress, .scheduler = &fixture_payload, .payload = &stress, .timeout_s = 180) {
    return stress_under(ctx, "ktstr_fixture");
}

KTSTR_TEST(scx_simple_runs_stress, .scheduler = &simple_payload, .payload = &stress, .timeout_s = 180) {
    return stress_under(ctx, "simple");
}

KTSTR_TEST(scx_central_runs_stress, .scheduler = &central_payload, .payload = &stress,
           .timeout_s = 180) {
    return stress_under(ctx, "central");
}
