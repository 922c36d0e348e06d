// An example suite of binary payloads under the kernel's default scheduler
// (EEVDF). Each KTSTR_TEST body runs inside its own VM.
#include <ktstr/test.hpp>

#include <fmt/core.h>

namespace {

// Declared with the helper: "fio" is packed automatically (first in include_files).
inline constexpr ktstr::Payload fio = ktstr::binary_payload(
    "fio",
    {
        .default_args = {"--name=randread", "--rw=randread", "--bs=4k", "--size=8M",
                         "--filename=/tmp/fio.dat", "--output-format=json"},
        .output = ktstr::OutputFormat::Json,
        .checks = {ktstr::Check::exit_code_is(0), ktstr::Check::json_has("/jobs/0/read/iops"),
                   ktstr::Check::json_in_range("/jobs/0/error", 0, 0)},
    });

// Declared by hand as an aggregate: nothing is injected, so it lists its own
// binary in include_files.
inline constexpr ktstr::Payload stress_ng{
    .name = "stress-ng",
    .kind = ktstr::Binary{"stress-ng"},
    .default_args = {"--metrics-brief"},
    .include_files = {"stress-ng"},
    .checks = {ktstr::Check::exit_code_is(0)},
};

}  // namespace

KTSTR_TEST(fio_randread_json, .payload = &fio, .topology = "1n1l2c1t", .timeout_s = 120) {
    auto report = ctx.payload(fio).run();
    return ktstr::check_payload(fio, report);
}

KTSTR_TEST(stress_ng_cpu, .workloads = {&stress_ng}, .topology = "1n1l2c1t", .timeout_s = 120) {
    auto report = ctx.payload(stress_ng).args({"--cpu", "2", "--timeout", "3s"}).run();
    auto result = ktstr::check_payload(stress_ng, report);
    result.expect(report.wall_time >= std::chrono::seconds(2),
                  "stress-ng returned before its 3 s run");
    return result;
}

KTSTR_TEST(shell_pipeline, .timeout_s = 60) {
    auto report = ktstr::PayloadRun("sh").args({"-c", "seq 1 1000 | sort -rn | head -n 1"}).run();
    auto result = ktstr::AssertResult::pass();
    result.expect(report.success(), "pipeline " + report.describe());
    result.expect(report.out.bytes == "1000\n", "pipeline printed " + report.out.bytes);
    return result;
}

KTSTR_TEST(guest_sees_topology, .topology = "1n2l2c1t", .timeout_s = 60) {
    auto report = ktstr::PayloadRun("nproc").run();
    auto cpus = std::to_string(ctx.topology().cpus()) + "\n";
    return ktstr::AssertResult::pass().expect(
        report.out.bytes == cpus,
        fmt::format("nproc said {}, expected {}", report.out.bytes, cpus));
}
