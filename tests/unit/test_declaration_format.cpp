// {fmt} prints declarations the way logs and failure messages show them.
#include <catch2/catch_test_macros.hpp>

#include <fmt/format.h>

#include "ktstr/payload.hpp"

namespace {

inline constexpr ktstr::Scheduler discovered{
    .name = "simple",
    .spec = ktstr::SchedulerSpec::discover("scx_simple"),
    .args = {"-v", "-s", "5000"},
    .config_file = "/etc/simple.toml",
    .sysctls = {"kernel.sched_cfs_bandwidth_slice_us=1000"},
    .kernel_args = {"nosmt"},
};
inline constexpr ktstr::Scheduler builtin{
    .name = "builtin",
    .spec = ktstr::SchedulerSpec::kernel_builtin({"echo on", "echo more"}, {}),
};
inline constexpr auto discovered_payload = ktstr::Payload::for_scheduler(discovered);
inline constexpr ktstr::Payload fio = ktstr::binary_payload(
    "fio", {
               .default_args = {"--rw=read", "--size=1M"},
               .output = ktstr::OutputFormat::Json,
               .checks = {ktstr::Check::exit_code_is(0), ktstr::Check::json_has("/jobs")},
           });

}  // namespace

TEST_CASE("a SchedulerSpec prints its kind and what it names", "[format]") {
    CHECK(fmt::format("{}", ktstr::SchedulerSpec::eevdf()) == "eevdf");
    CHECK(fmt::format("{}", ktstr::SchedulerSpec::discover("scx_simple")) ==
          "discover 'scx_simple'");
    CHECK(fmt::format("{}", ktstr::SchedulerSpec::path("/opt/scx_lavd")) == "path '/opt/scx_lavd'");
    CHECK(fmt::format("{}", builtin.spec) ==
          "kernel_builtin (enable: 'echo on'; 'echo more', disable: none)");
}

TEST_CASE("a Scheduler prints its name, spec and the settings it has", "[format]") {
    CHECK(fmt::format("{}", ktstr::kEevdf) == "eevdf");
    CHECK(fmt::format("{}", discovered) ==
          "simple (discover 'scx_simple', args: -v -s 5000, config: --config /etc/simple.toml, "
          "sysctls: kernel.sched_cfs_bandwidth_slice_us=1000, kernel args: nosmt)");
    CHECK(fmt::format("[{}]", builtin) ==
          "[builtin (kernel_builtin (enable: 'echo on'; 'echo more', disable: none))]");
    CHECK(fmt::format("{}", ktstr::Scheduler{}) == "(unnamed) (eevdf)");
}

TEST_CASE("a PayloadKind prints the binary or the scheduler", "[format]") {
    CHECK(fmt::format("{}", fio.kind) == "binary 'fio'");
    CHECK(fmt::format("{}", ktstr::PayloadKind{&builtin}) ==
          "scheduler builtin (kernel_builtin (enable: 'echo on'; 'echo more', disable: none))");
    CHECK(fmt::format("{}", ktstr::PayloadKind{static_cast<const ktstr::Scheduler*>(nullptr)}) ==
          "scheduler (none)");
}

TEST_CASE("a Payload prints its name, kind and settings", "[format]") {
    CHECK(fmt::format("{}", fio) ==
          "fio (binary 'fio', args: --rw=read --size=1M, include files: fio, json output, "
          "2 checks)");
    CHECK(fmt::format("{}", ktstr::Payload::kernel_default()) == "eevdf (scheduler eevdf)");
    CHECK(fmt::format("{}", discovered_payload).starts_with("simple (scheduler simple (discover"));
    ktstr::Payload shell{.name = "sh",
                         .kind = ktstr::Binary{"sh"},
                         .uses_parent_pgrp = true,
                         .checks = {ktstr::Check::exit_code_is(1)}};
    CHECK(fmt::format("{}", shell) == "sh (binary 'sh', in the parent's process group, 1 check)");
}
