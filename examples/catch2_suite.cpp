// A project whose tests already use Catch2 adds KTSTR_TESTs without a second
// framework on the host: each KTSTR_TEST becomes a Catch2 section that boots
// its VM, and inside the guest the same binary runs the body.
#include <catch2/catch_session.hpp>
#include <catch2/catch_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>
#include <ktstr/test.hpp>

#include <string>

KTSTR_TEST(catch2_hackbench, .extra_include_files = {"hackbench"}, .timeout_s = 120) {
    auto report = ktstr::PayloadRun("hackbench").args({"-g", "2", "-l", "50"}).run();
    return ktstr::AssertResult::pass().expect(report.success(),
                                              "hackbench " + report.describe() + report.err.bytes);
}

KTSTR_TEST(catch2_sees_two_cpus, .topology = "1n1l2c1t", .timeout_s = 60) {
    auto report = ktstr::PayloadRun("nproc").run();
    return ktstr::AssertResult::pass().expect(report.out.bytes == "2\n",
                                              "nproc: " + report.out.bytes);
}

TEST_CASE("KTSTR_TESTs pass in their VMs", "[vm]") {
    auto name = GENERATE(as<std::string>{}, "catch2_hackbench", "catch2_sees_two_cpus");
    DYNAMIC_SECTION(name) {
        auto verdict = ktstr::run_test_in_vm(name);
        INFO(verdict.report);
        CHECK(verdict.status != ktstr::AssertResult::Status::Fail);
    }
}

int main(int argc, char** argv) {
    // Inside the guest, init runs this binary with the test's name.
    if (ktstr::is_guest_invocation(argc, argv)) return ktstr::run_main(argc, argv);
    return Catch::Session().run(argc, argv);
}
