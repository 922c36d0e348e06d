// Where a run's time goes, the -j budget and initramfs compression.
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <fmt/core.h>

#include <cstdio>
#include <fstream>
#include <thread>

#include "../../src/suite/host.hpp"
#include "command_output.hpp"
#include "ktstr/compression.hpp"
#include "ktstr/fd.hpp"
#include "ktstr/initramfs.hpp"
#include "ktstr/initramfs_cache.hpp"
#include "ktstr/run_phases.hpp"

using Catch::Matchers::ContainsSubstring;
namespace fs = std::filesystem;

namespace {

// A run as the host records it: hello 2000 ms after QEMU's start, sent at guest time 1700
// (init started at 1500), the payload from 1800 to 2300, QEMU gone at 2900.
ktstr::VmResult sample_run() {
    ktstr::VmResult vm;
    vm.outcome = ktstr::Outcome::Verdict;
    vm.ms_to_hello = 2000;
    vm.ms_qemu_exit = 2900;
    vm.ms_total = 2950;
    vm.hello = {.ms_init = 1500, .ms_sent = 1700};
    vm.verdict.ms_payload_start = 1800;
    vm.verdict.ms_payload_end = 2300;
    return vm;
}

}  // namespace

TEST_CASE("run phases split the host's wall time using the guest's stamps", "[phases]") {
    auto p = ktstr::run_phases(40, sample_run());
    REQUIRE(p);
    CHECK(p->pack_ms == 40);
    CHECK(p->qemu_start_ms == 300);  // 2000 on the host was 1700 in the guest
    CHECK(p->boot_to_init_ms == 1500);
    CHECK(p->init_to_payload_ms == 300);
    CHECK(p->payload_ms == 500);
    CHECK(p->shutdown_ms == 300);  // 2900 - (300 + 2300)
    CHECK(p->total_ms() == 40 + 2900);
    CHECK(ktstr::format_phases(*p) ==
          "pack 40 ms, qemu start 300 ms, boot to init 1500 ms, init to payload 300 ms, "
          "payload 500 ms, shutdown 300 ms (total 2940 ms)");
}

TEST_CASE("run phases need the guest's stamps and never go negative", "[phases]") {
    auto vm = sample_run();
    vm.outcome = ktstr::Outcome::KernelPanic;
    CHECK_FALSE(ktstr::run_phases(0, vm));
    vm = sample_run();
    vm.hello = {};
    CHECK_FALSE(ktstr::run_phases(0, vm));

    vm = sample_run();
    vm.ms_to_hello = 1000;  // a guest clock ahead of the host's
    vm.ms_qemu_exit = 0;    // the VM's end not seen: its total stands in
    auto p = ktstr::run_phases(-1, vm);
    REQUIRE(p);
    CHECK(p->pack_ms == 0);
    CHECK(p->qemu_start_ms == 0);
    CHECK(p->shutdown_ms == 2950 - 2300);
}

TEST_CASE("a VM costs one host thread under TCG and one per vCPU under KVM", "[budget]") {
    auto four = ktstr::Topology::parse("1n2l2c1t");
    CHECK(ktstr::suite::vm_thread_cost(ktstr::Accel::Tcg, four) == 1);
    CHECK(ktstr::suite::vm_thread_cost(ktstr::Accel::Kvm, four) == 4);
}

TEST_CASE("the -j budget never oversubscribes, but a big VM still runs alone", "[budget]") {
    ktstr::suite::HostBudget budget(2);
    CHECK(budget.fits(1));
    budget.take(1);
    CHECK(budget.fits(1));
    budget.take(1);
    CHECK_FALSE(budget.fits(1));
    budget.give(1);
    CHECK_FALSE(budget.fits(2));
    budget.give(1);
    CHECK(budget.fits(4));  // more than the budget: alone
    budget.take(4);
    CHECK_FALSE(budget.fits(1));
    budget.give(4);
    CHECK(budget.used() == 0);
    CHECK(ktstr::suite::HostBudget(0).fits(1));
}

TEST_CASE("each codec's output unpacks with its own tool to the same bytes", "[compress]") {
    ktstr::TempDir dir;
    auto plain = dir.path() / "plain";
    {
        std::ofstream out(plain, std::ios::binary);
        // Over one lz4 block (8 MiB) and one read chunk, partly compressible.
        for (int i = 0; i < (9 << 20) / 16; ++i) out << fmt::format("{:015x}\n", i * 2654435761u);
    }
    const std::pair<ktstr::Compression, const char*> tools[] = {
        {ktstr::Compression::Gzip, "gzip -dc"},
        {ktstr::Compression::Lz4, "lz4 -dc"},
        {ktstr::Compression::Zstd, "zstd -dc"},
        {ktstr::Compression::None, "cat"}};
    auto expected = command_output("sha256sum < " + plain.string());
    for (auto [c, tool] : tools) {
        auto packed = dir.path() / (std::string("packed") + ktstr::compression_suffix(c));
        ktstr::compress_initramfs(plain, packed, c);
        INFO(ktstr::compression_name(c));
        CHECK(command_output(std::string(tool) + " < " + packed.string() + " | sha256sum") ==
              expected);
        if (c != ktstr::Compression::None) CHECK(fs::file_size(packed) < fs::file_size(plain));
    }
}

TEST_CASE("the compress flag takes the kernel's codecs and names the flag otherwise",
          "[compress]") {
    CHECK(ktstr::parse_compression("zstd", "--compress") == ktstr::Compression::Zstd);
    CHECK(ktstr::parse_compression("none", "--compress") == ktstr::Compression::None);
    CHECK_THROWS_WITH(ktstr::parse_compression("xz", "--compress"),
                      ContainsSubstring("--compress") && ContainsSubstring("'xz'"));
    CHECK(ktstr::default_compression(ktstr::Accel::Tcg) == ktstr::Compression::None);
}
