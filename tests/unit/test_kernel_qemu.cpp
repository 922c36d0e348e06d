#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <algorithm>
#include <cstdlib>
#include <fstream>

#include "ktstr/error.hpp"
#include "ktstr/fd.hpp"
#include "ktstr/initramfs_cache.hpp"
#include "ktstr/kernel.hpp"
#include "ktstr/protocol.hpp"
#include "ktstr/qemu.hpp"
#include "ktstr/sha256.hpp"
#include "ktstr/vm_run.hpp"
#include "scoped_env.hpp"

#include <sys/stat.h>

namespace fs = std::filesystem;
using Catch::Matchers::ContainsSubstring;

namespace {

// A file with a bzImage header whose version string says `version`.
void write_fake_image(const fs::path& p, const std::string& version) {
    std::string img(0x400, '\0');
    img.replace(0x202, 4, "HdrS");
    img[0x20e] = 0x00;  // version string at 0x100 + 0x200
    img[0x20f] = 0x01;
    img.replace(0x300, version.size() + 8, version + " (test) ");
    std::ofstream(p, std::ios::binary) << img;
}

}  // namespace

TEST_CASE("a kernel's version comes from its image header", "[kernel]") {
    ktstr::TempDir dir;
    write_fake_image(dir.path() / "vmlinuz", "7.9.1-test");
    std::ofstream(dir.path() / "config") << "CONFIG_FOO=y\nCONFIG_SCHED_CLASS_EXT=y\n";
    auto k = ktstr::inspect_kernel(dir.path() / "vmlinuz", "test");
    CHECK(k.version == "7.9.1-test");
    REQUIRE(k.config);
    CHECK(k.sched_ext == true);
}

TEST_CASE("a config without sched_ext says so; no config means unknown", "[kernel]") {
    ktstr::TempDir dir;
    write_fake_image(dir.path() / "vmlinuz", "6.1.0");
    auto unknown = ktstr::inspect_kernel(dir.path() / "vmlinuz", "test");
    CHECK_FALSE(unknown.sched_ext.has_value());
    std::ofstream(dir.path() / "config") << "# CONFIG_SCHED_CLASS_EXT is not set\n";
    CHECK(ktstr::inspect_kernel(dir.path() / "vmlinuz", "test").sched_ext == false);
}

TEST_CASE("the --kernel flag beats KTSTR_KERNEL, which beats the cache", "[kernel]") {
    ktstr::TempDir dir;
    fs::create_directories(dir.path() / "a");
    fs::create_directories(dir.path() / "cache/kernels/7.0/");
    write_fake_image(dir.path() / "a/vmlinuz", "1.0");
    write_fake_image(dir.path() / "b", "2.0");
    write_fake_image(dir.path() / "cache/kernels/7.0/vmlinuz", "7.0");
    ScopedEnv cache("KTSTR_CACHE_DIR", (dir.path() / "cache").string());
    ScopedEnv env("KTSTR_KERNEL", (dir.path() / "b").string());
    CHECK(ktstr::choose_kernel((dir.path() / "a").string()).version == "1.0");
    CHECK(ktstr::choose_kernel("").version == "2.0");
    CHECK(ktstr::choose_kernel("").found_by == "KTSTR_KERNEL");
    ::unsetenv("KTSTR_KERNEL");
    CHECK(ktstr::choose_kernel("").version == "7.0");
    CHECK(ktstr::choose_kernel("").found_by == "cache");
}

TEST_CASE("a missing kernel is an error naming it", "[kernel]") {
    CHECK_THROWS_WITH(ktstr::choose_kernel("/nonexistent/vmlinuz"),
                      ContainsSubstring("/nonexistent/vmlinuz") && ContainsSubstring("--kernel") &&
                          ContainsSubstring("no such file"));
}

TEST_CASE("a --kernel that is no file says what it is instead", "[kernel]") {
    ktstr::TempDir dir;
    const auto fifo = dir.path() / "fifo";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    CHECK_THROWS_WITH(ktstr::choose_kernel(fifo.string()),
                      ContainsSubstring(fifo.string()) && ContainsSubstring("not a regular file"));
    CHECK_THROWS_WITH(ktstr::choose_kernel(dir.path().string()),
                      ContainsSubstring("a directory with no vmlinuz in it"));
    fs::create_directory(dir.path() / "vmlinuz");
    CHECK_THROWS_WITH(ktstr::choose_kernel(dir.path().string()),
                      ContainsSubstring("its vmlinuz is a directory"));
}

TEST_CASE("accelerator words", "[qemu]") {
    CHECK(ktstr::choose_accel("tcg").accel == ktstr::Accel::Tcg);
    CHECK_THROWS_WITH(ktstr::choose_accel("hvf"), ContainsSubstring("'hvf'"));
    ScopedEnv env("KTSTR_ACCEL", "tcg");
    auto c = ktstr::choose_accel("");
    CHECK(c.accel == ktstr::Accel::Tcg);
    CHECK_THAT(c.reason, ContainsSubstring("KTSTR_ACCEL"));
}

TEST_CASE("auto never picks kvm on kvm_pvm", "[qemu]") {
    if (!fs::exists("/sys/module/kvm_pvm")) SKIP("this host has no kvm_pvm module");
    auto c = ktstr::choose_accel("auto");
    CHECK(c.accel == ktstr::Accel::Tcg);
    CHECK_THAT(c.reason, ContainsSubstring("kvm_pvm"));
}

TEST_CASE("the qemu command line carries topology, ports and no reboot", "[qemu]") {
    ktstr::QemuConfig c;
    c.kernel = "/k";
    c.initramfs = "/i";
    c.topology = {1, 2, 3, 2};
    c.memory_mb = 777;
    c.console_socket = "/tmp/con";
    c.control_socket = "/tmp/c";
    c.stdout_socket = "/tmp/o";
    c.stderr_socket = "/tmp/e";
    c.cmdline_extra = {"foo=bar"};
    auto a = ktstr::qemu_argv(c);
    auto has = [&](const std::string& w) { return std::find(a.begin(), a.end(), w) != a.end(); };
    CHECK(has("12,sockets=2,cores=3,threads=2"));
    CHECK(has("777"));
    CHECK(has("-no-reboot"));
    // The console, then the control, stdout and stderr ports, in that order (ttyS0-3).
    std::vector<std::string> serials;
    for (size_t i = 0; i + 1 < a.size(); ++i)
        if (a[i] == "-serial") serials.push_back(a[i + 1]);
    CHECK(serials ==
          std::vector<std::string>{"chardev:con", "chardev:ctl", "chardev:out", "chardev:err"});
    CHECK(has("socket,id=ctl,path=/tmp/c"));
    CHECK(has("socket,id=err,path=/tmp/e"));
    CHECK_FALSE(std::any_of(a.begin(), a.end(), [](const std::string& w) {
        return w.find("virtio") != std::string::npos;
    }));
    CHECK(has("tcg,thread=single"));
    CHECK(has("socket,id=con,path=/tmp/con"));
    auto cmdline = ktstr::kernel_cmdline(c);
    CHECK_THAT(cmdline, ContainsSubstring("panic=-1"));
    CHECK_THAT(cmdline, ContainsSubstring("foo=bar"));
    CHECK_THAT(cmdline, ContainsSubstring("quiet"));

    // Fewer serial ports than ktstr's four would cut its channels: refused, naming the word.
    c.cmdline_extra = {"8250.nr_uarts=1"};
    CHECK_THROWS_WITH(ktstr::kernel_cmdline(c),
                      ContainsSubstring("'8250.nr_uarts=1' leaves the guest fewer than the 4"));
    c.cmdline_extra = {"8250.nr_uarts=8"};
    CHECK_THAT(ktstr::kernel_cmdline(c), ContainsSubstring("8250.nr_uarts=8"));
}

TEST_CASE("base64 round trip, and what is not base64", "[qemu]") {
    using ktstr::protocol::base64_decode;
    using ktstr::protocol::base64_encode;
    CHECK(base64_encode("") == "");
    CHECK(base64_encode("f") == "Zg==");
    CHECK(base64_encode("fo") == "Zm8=");
    CHECK(base64_encode("foo") == "Zm9v");
    CHECK(base64_encode("foobar") == "Zm9vYmFy");
    std::string all;
    for (int c = 0; c < 256; ++c) all += char(c);
    for (size_t n = 0; n <= all.size(); n += 37)
        CHECK(base64_decode(base64_encode(all.substr(0, n))) == all.substr(0, n));
    for (const char* bad : {"Zg=", "Zg=A", "Z===", "Zm=v", "Zm9v Zm9v", "Zm9\"", "Zg==Zg=="})
        CHECK_FALSE(base64_decode(bad));
}

TEST_CASE("the job rides on the kernel command line before the user's words", "[qemu]") {
    ktstr::protocol::Job job;
    job.command = "echo \"a b\"; exit 3";
    job.env = {{"X", "y z"}};
    job.timeout_s = 7;
    job.path = "/include-files/bin:/include-files:/bin";
    auto word = ktstr::protocol::job_word(job);
    REQUIRE(word.rfind("KTSTR_JOB=", 0) == 0);
    // No space or quote: the kernel hands the word to init whole.
    CHECK(word.find_first_of(" \t\"'") == std::string::npos);
    auto json = ktstr::protocol::base64_decode(word.substr(10));
    REQUIRE(json);
    auto back = nlohmann::json::parse(*json).get<ktstr::protocol::Job>();
    CHECK(back.command == job.command);
    CHECK(back.env == job.env);
    CHECK(back.timeout_s == 7);
    CHECK(back.path == job.path);

    ktstr::QemuConfig c;
    c.cmdline_extra = {"--", "init-arg"};
    c.job_word = word;
    auto line = ktstr::kernel_cmdline(c);
    CHECK(line.find(word) < line.find(" -- "));

    // A word of the user's with that name would replace the job in init's environment.
    c.cmdline_extra = {"KTSTR_JOB=e30="};
    CHECK_THROWS_WITH(ktstr::kernel_cmdline(c),
                      ContainsSubstring("kernel word 'KTSTR_JOB=e30=' is ktstr's own"));
}

TEST_CASE("a panic is the kernel's own line, not a command echoing the words", "[qemu]") {
    using ktstr::find_panic;
    CHECK(find_panic("[    8.1] sysrq: Trigger a crash\r\n[    8.2] Kernel panic - not syncing: "
                     "sysrq triggered crash\r\n") == 34);
    CHECK(find_panic("Kernel panic - not syncing: Attempted to kill init!\n") == 0);
    CHECK(find_panic("/ # echo Kernel panic - not syncing\r\n") == std::string::npos);
    CHECK(find_panic("said: [x] Kernel panic - not syncing\n") == std::string::npos);
    CHECK(find_panic("[    1.0] Kernel panic - not") == std::string::npos);
}

TEST_CASE("only the TCG early-boot race is retried; a configuration's panic says what to change",
          "[qemu]") {
    struct Case {
        const char* console;
        bool boot_race;
        const char* says;
    };
    // Console lines as the 7.3 kernel prints them (the memory one from --memory 160 with a
    // 130 MB include file).
    const Case cases[] = {
        {"[    0.91] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI\r\n"
         "[    0.91] RIP: 0010:enqueue_task_fair+0x1/0x8a0\r\n"
         "[    0.92] Kernel panic - not syncing: Fatal exception\r\n",
         true, "Kernel panic - not syncing: Fatal exception; an int3 oops"},
        {"[    2.06] Kernel panic - not syncing: System is deadlocked on memory\r\n", false,
         "ran out of memory (160 MB for a 300 MB initramfs): raise --memory"},
        {"[    1.0] Kernel panic - not syncing: VFS: Unable to mount root fs on "
         "unknown-block(0,0)\n",
         false, "check the --cmdline words (rdinit="},
        // An int3 oops after the panic did not cause it; unknown panics are not retried.
        {"[    1.0] Kernel panic - not syncing: something\n[    1.1] Oops: int3\n", false,
         "not retried"},
    };
    for (const auto& c : cases) {
        auto r = ktstr::explain_early_panic(c.console, 160, 300 << 20);
        CHECK(r.boot_race == c.boot_race);
        CHECK_THAT(r.reason, ContainsSubstring(c.says));
    }
}

TEST_CASE("the default boot timeout grows with the initramfs", "[qemu]") {
    using ktstr::Accel;
    using ktstr::default_boot_timeout_s;
    CHECK(default_boot_timeout_s(Accel::Tcg, 0) == 120);
    CHECK(default_boot_timeout_s(Accel::Kvm, 0) == 30);
    // Twice the 11 MB/s measured under TCG (see vm_run.cpp).
    CHECK(default_boot_timeout_s(Accel::Tcg, 1ull << 30) >= 120 + 2 * 1024 / 11.0);
    CHECK(default_boot_timeout_s(Accel::Tcg, 1ull << 30) >
          default_boot_timeout_s(Accel::Tcg, 1 << 20));
}

TEST_CASE("topology text round trip and errors", "[topology]") {
    for (auto text : {"1n1l1c1t", "1n2l4c1t", "2n4l2c2t", "4n8l16c2t"})
        CHECK(ktstr::Topology::parse(text).to_string() == text);
    auto t = ktstr::Topology::parse("2n4l2c2t");
    CHECK(t.cpus() == 16);
    CHECK_THROWS_WITH(ktstr::Topology::parse("2n3l1c1t"), ContainsSubstring("evenly"));
    CHECK_THROWS_WITH(ktstr::Topology::parse("1n0l1c1t"), ContainsSubstring("1n2l4c1t"));
    CHECK_THROWS_WITH(ktstr::Topology::parse("1n1l1c"), ContainsSubstring("'1n1l1c'"));
    CHECK_THROWS_WITH(ktstr::Topology::parse("1n1l1c1tx"), ContainsSubstring("trailing"));
}

TEST_CASE("NUMA nodes take whole sockets and all the memory", "[qemu]") {
    ktstr::QemuConfig c;
    c.topology = ktstr::Topology::parse("2n4l1c1t");
    c.memory_mb = 1025;
    auto a = ktstr::qemu_argv(c);
    auto has = [&](const std::string& w) { return std::find(a.begin(), a.end(), w) != a.end(); };
    CHECK(has("memory-backend-ram,id=mem0,size=512M"));
    CHECK(has("memory-backend-ram,id=mem1,size=513M"));
    CHECK(has("cpu,node-id=0,socket-id=1"));
    CHECK(has("cpu,node-id=1,socket-id=3"));
}

TEST_CASE("SHA-256 matches the standard's test vectors", "[cache]") {
    CHECK(ktstr::Sha256::hex("") ==
          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(ktstr::Sha256::hex("abc") ==
          "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(ktstr::Sha256::hex(std::string(1000000, 'a')) ==
          "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("the initramfs cache serves a hit only while every file is unchanged", "[cache]") {
    ktstr::TempDir dir;
    auto file = dir.path() / "payload";
    std::ofstream(file) << "version 1";
    ktstr::ArchiveEntries entries(1);
    entries[0].archive_path = "/include-files/payload";
    entries[0].host_path = file;
    entries[0].mode = 0755;
    entries[0].reason = "test";
    auto cache = dir.path() / "cache";
    auto first = ktstr::cached_initramfs(entries, cache);
    CHECK_FALSE(first.hit);
    auto again = ktstr::cached_initramfs(entries, cache);
    CHECK(again.hit);
    CHECK(again.path == first.path);
    // Same size, same mtime set back by hand: ctime still moves, so a new key.
    struct stat before {};
    ::stat(file.c_str(), &before);
    std::ofstream(file) << "version 2";
    timespec times[2] = {before.st_atim, before.st_mtim};
    ::utimensat(AT_FDCWD, file.c_str(), times, 0);
    auto changed = ktstr::cached_initramfs(entries, cache);
    CHECK_FALSE(changed.hit);
    CHECK(changed.key != first.key);
    entries[0].mode = 0700;
    CHECK(ktstr::initramfs_key(entries) != changed.key);
    for (auto* run : {&first, &again, &changed}) run->in_use.reset();  // the runs are over
    CHECK(ktstr::clean_initramfs_cache(cache) > 0);
    CHECK(fs::is_empty(cache));
}
