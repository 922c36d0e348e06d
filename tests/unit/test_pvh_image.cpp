#include <catch2/catch_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <chrono>
#include <fstream>
#include <iterator>

#include "command_output.hpp"
#include "ktstr/fd.hpp"
#include "ktstr/kernel.hpp"
#include "ktstr/pvh_image.hpp"
#include "scoped_env.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::ContainsSubstring;

namespace {

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// A tiny x86-64 ELF built by the host's assembler and linker, with the PVH entry note
// (Xen's PHYS32_ENTRY, type 18) a CONFIG_PVH kernel carries, or without it.
fs::path build_elf(const fs::path& dir, bool pvh_note) {
    std::string source = ".text\n.globl _start\n_start: hlt\n";
    if (pvh_note)
        source +=
            ".section .note.Xen,\"a\",@note\n.balign 4\n.long 4, 8, 18\n"
            ".asciz \"Xen\"\n.balign 4\n.quad 0x1000000\n";
    std::ofstream(dir / "entry.s") << source;
    auto elf = dir / (pvh_note ? "pvh.elf" : "plain.elf");
    command_output("cd '" + dir.string() + "' && as -o entry.o entry.s && ld -o '" + elf.string() +
                   "' entry.o");
    return elf;
}

void put32(std::string& s, size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) s[at + i] = char(v >> (8 * i));
}

// A bzImage-shaped file: a boot sector and one setup sector (boot protocol 2.15), then
// 16 bytes of "decompressor", then `payload`, then a trailer as the real image has.
void write_bzimage(const fs::path& p, const std::string& payload) {
    std::string img(1024, '\0');
    img[0x1f1] = 1;  // setup sectors: the protected-mode part starts at 2 * 512
    img.replace(0x202, 4, "HdrS");
    img[0x206] = 0x0f, img[0x207] = 0x02;
    put32(img, 0x248, 16);
    put32(img, 0x24c, uint32_t(payload.size()));
    img += std::string(16, '\x90') + payload + std::string(64, '\xcc');
    std::ofstream(p, std::ios::binary) << img;
}

// `tool` compresses `file` to stdout.
std::string compressed(const std::string& tool, const fs::path& file) {
    return command_output(tool + " < '" + file.string() + "'");
}

size_t files_in(const fs::path& dir) {
    std::error_code ec;
    return std::distance(fs::directory_iterator(dir, ec), fs::directory_iterator());
}

}  // namespace

TEST_CASE("a PVH kernel's ELF is unpacked from each payload format the kernel builds", "[pvh]") {
    auto tool = GENERATE(as<std::string>{}, "gzip -9 -n", "xz --check=crc32", "lz4 -l -q",
                         "zstd -19 -q", "zstd -19 -q --no-content-size");
    INFO(tool);
    ktstr::TempDir dir;
    auto elf = build_elf(dir.path(), true);
    write_bzimage(dir.path() / "bzImage", compressed(tool, elf));
    auto cache = dir.path() / "cache";

    auto got = ktstr::pvh_image(dir.path() / "bzImage", cache);
    REQUIRE(got.elf);
    CHECK(read_file(*got.elf) == read_file(elf));
    CHECK_THAT(got.why, ContainsSubstring("unpacked from"));
    auto again = ktstr::pvh_image(dir.path() / "bzImage", cache);
    CHECK(again.elf == got.elf);
    CHECK_THAT(again.why, ContainsSubstring("cached"));
    CHECK(files_in(cache) == 1);  // no temp file left beside it
}

// The kernel's build compresses from a pipe (no content size in the frame) and appends the
// unpacked size; that size lets the frame unpack straight into the mapped output file.
TEST_CASE("a zstd payload with the kernel's size trailer unpacks whole", "[pvh]") {
    ktstr::TempDir dir;
    auto elf = build_elf(dir.path(), true);
    std::ofstream(elf, std::ios::app) << std::string(3 << 20, '\0') << std::string(5000, 'k');
    auto zst = compressed("zstd -19 -q --no-content-size", elf);
    std::string trailer(4, '\0');
    put32(trailer, 0, uint32_t(fs::file_size(elf)));
    write_bzimage(dir.path() / "bzImage", zst + trailer);

    auto got = ktstr::pvh_image(dir.path() / "bzImage", dir.path() / "cache");
    REQUIRE(got.elf);
    CHECK(fs::file_size(*got.elf) == fs::file_size(elf));
    CHECK(read_file(*got.elf) == read_file(elf));
}

TEST_CASE("the real kernel's PVH ELF is the vmlinux the set-up script extracted", "[pvh]") {
    auto kernel = ktstr::choose_kernel("");
    auto reference = kernel.image.parent_path() / "vmlinux";
    if (!fs::exists(reference)) SKIP("no vmlinux beside " + kernel.image.string());
    ktstr::TempDir dir;
    auto got = ktstr::pvh_image(kernel.image, dir.path());
    REQUIRE(got.elf);
    CHECK(fs::file_size(*got.elf) == fs::file_size(reference));
    command_output("cmp '" + got.elf->string() + "' '" + reference.string() + "'");
}

TEST_CASE("a kernel that cannot boot through PVH boots as a bzImage, and says why", "[pvh]") {
    ktstr::TempDir dir;
    auto cache = dir.path() / "cache";
    auto image = dir.path() / "bzImage";

    SECTION("no PVH note: refused, and remembered") {
        write_bzimage(image, compressed("gzip -n", build_elf(dir.path(), false)));
        auto got = ktstr::pvh_image(image, cache);
        CHECK_FALSE(got.elf);
        CHECK_THAT(got.why, ContainsSubstring("no PVH entry"));
        CHECK_THAT(got.why, ContainsSubstring("CONFIG_PVH"));
        CHECK(files_in(cache) == 1);  // the remembered refusal, no ELF
        auto again = ktstr::pvh_image(image, cache);
        CHECK_FALSE(again.elf);
        CHECK(again.why == got.why);
    }
    SECTION("a payload format ktstr does not read") {
        write_bzimage(image, compressed("bzip2", build_elf(dir.path(), true)));
        auto got = ktstr::pvh_image(image, cache);
        CHECK_FALSE(got.elf);
        CHECK_THAT(got.why, ContainsSubstring("format ktstr does not unpack"));
    }
    SECTION("KTSTR_KERNEL_ENTRY=bzimage (any case) turns it off") {
        write_bzimage(image, compressed("gzip -n", build_elf(dir.path(), true)));
        ScopedEnv env("KTSTR_KERNEL_ENTRY", "bzImage");
        auto got = ktstr::pvh_image(image, cache);
        CHECK_FALSE(got.elf);
        CHECK_THAT(got.why, ContainsSubstring("KTSTR_KERNEL_ENTRY=bzimage"));
    }
    SECTION("KTSTR_KERNEL_ENTRY=pvh fails when PVH cannot be used") {
        write_bzimage(image, compressed("gzip -n", build_elf(dir.path(), false)));
        ScopedEnv env("KTSTR_KERNEL_ENTRY", "pvh");
        CHECK_THROWS_WITH(ktstr::pvh_image(image, cache),
                          ContainsSubstring("KTSTR_KERNEL_ENTRY=pvh, but kernel") &&
                              ContainsSubstring("no PVH entry"));
    }
    SECTION("an unwritable cache: the bzImage boots, with a warning") {
        write_bzimage(image, compressed("gzip -n", build_elf(dir.path(), true)));
        std::ofstream(dir.path() / "afile") << "x";
        auto got = ktstr::pvh_image(image, dir.path() / "afile" / "cache");
        CHECK_FALSE(got.elf);
        CHECK(got.warn);
        CHECK_THAT(got.why,
                   ContainsSubstring("cannot create") && ContainsSubstring("booting the bzImage"));
    }
}

TEST_CASE("a kernel file that cannot boot either way is refused, naming it", "[pvh]") {
    ktstr::TempDir dir;
    auto cache = dir.path() / "cache";
    auto image = dir.path() / "my kernel";
    auto refused = [&](const std::string& what) {
        CHECK_THROWS_WITH(ktstr::pvh_image(image, cache),
                          ContainsSubstring("kernel '" + image.string() + "' " + what));
        CHECK(files_in(cache) == 0);  // nothing remembered, nothing left behind
    };
    SECTION("empty") {
        std::ofstream{image};
        refused("is empty");
    }
    SECTION("not a kernel") {
        std::ofstream(image) << "#!/bin/sh\n";
        refused("is not a bzImage");
    }
    SECTION("truncated") {
        write_bzimage(image, compressed("gzip -n", build_elf(dir.path(), true)));
        fs::resize_file(image, 1100);
        refused("is truncated");
    }
    SECTION("a damaged payload") {
        auto gz = compressed("gzip -n", build_elf(dir.path(), true));
        write_bzimage(image, gz.substr(0, gz.size() / 2));
        refused("is damaged: gzip payload");
    }
    SECTION("a zstd payload whose size trailer is short of what it unpacks to") {
        auto elf = build_elf(dir.path(), true);
        auto zst = compressed("zstd -q --no-content-size", elf);
        std::string trailer(4, '\0');
        put32(trailer, 0, uint32_t(fs::file_size(elf) - 1));
        write_bzimage(image, zst + trailer);
        refused("is damaged: zstd payload unpacks to more than its recorded");
    }
    SECTION("an ELF without the PVH entry") {
        fs::copy_file(build_elf(dir.path(), false), image);
        refused("is an ELF file QEMU cannot boot");
    }
    SECTION("KTSTR_KERNEL_ENTRY with an unknown word") {
        write_bzimage(image, compressed("gzip -n", build_elf(dir.path(), true)));
        ScopedEnv env("KTSTR_KERNEL_ENTRY", "fast");
        CHECK_THROWS_WITH(ktstr::pvh_image(image, cache),
                          ContainsSubstring("KTSTR_KERNEL_ENTRY wants auto, pvh or bzimage"));
    }
}

TEST_CASE("an ELF vmlinux with the PVH entry boots as it is", "[pvh]") {
    ktstr::TempDir dir;
    auto elf = build_elf(dir.path(), true);
    auto got = ktstr::pvh_image(elf, dir.path() / "cache");
    REQUIRE(got.elf);
    CHECK(*got.elf == elf);
    CHECK(files_in(dir.path() / "cache") == 0);
}

TEST_CASE("a rebuilt kernel is unpacked again, never served from a stale cache", "[pvh]") {
    ktstr::TempDir dir;
    auto cache = dir.path() / "cache";
    auto image = dir.path() / "bzImage";
    auto elf = build_elf(dir.path(), true);
    write_bzimage(image, compressed("gzip -n", elf));
    auto first = ktstr::pvh_image(image, cache);
    REQUIRE(first.elf);

    // The same path, rewritten with a different kernel (a longer ELF).
    std::ofstream(elf, std::ios::app) << std::string(4096, 'x');
    write_bzimage(image, compressed("zstd -q", elf));
    auto second = ktstr::pvh_image(image, cache);
    REQUIRE(second.elf);
    CHECK(*second.elf != *first.elf);
    CHECK(read_file(*second.elf) == read_file(elf));
}

TEST_CASE("the PVH cache keeps the four most recently used kernels", "[pvh]") {
    ktstr::TempDir dir;
    auto cache = dir.path() / "cache";
    auto elf = build_elf(dir.path(), true);
    auto payload = compressed("gzip -n", elf);
    for (int i = 0; i < 6; ++i) {
        auto image = dir.path() / ("bzImage" + std::to_string(i));
        write_bzimage(image, payload);
        REQUIRE(ktstr::pvh_image(image, cache).elf);
    }
    CHECK(files_in(cache) == 4);
    // A temp file of a writer killed long ago goes at the next trim; a fresh one stays.
    std::ofstream(cache / ".dead.abc123") << "partial";
    fs::last_write_time(cache / ".dead.abc123",
                        fs::file_time_type::clock::now() - std::chrono::hours(1));
    std::ofstream(cache / ".live.abc123") << "partial";
    write_bzimage(dir.path() / "bzImage6", payload);
    REQUIRE(ktstr::pvh_image(dir.path() / "bzImage6", cache).elf);
    CHECK_FALSE(fs::exists(cache / ".dead.abc123"));
    CHECK(fs::exists(cache / ".live.abc123"));
    fs::remove(cache / ".live.abc123");
    CHECK(files_in(cache) == 4);
    CHECK(ktstr::clean_pvh_cache(cache) == 4 * fs::file_size(elf));
    CHECK(files_in(cache) == 0);
}

TEST_CASE("a PVH kernel is used only when QEMU can put the initrd above it", "[pvh]") {
    ktstr::TempDir dir;
    write_bzimage(dir.path() / "bzImage", compressed("gzip -n", build_elf(dir.path(), true)));
    auto image = ktstr::pvh_image(dir.path() / "bzImage", dir.path() / "cache");
    REQUIRE(image.elf);
    CHECK(image.load_end > 0x400000);  // ld's default start of text, and past it
    const uint64_t mb = 1 << 20;
    image.load_end = 80 * mb;  // about what the 7.3 kernel's segments take
    CHECK(ktstr::pvh_fits(image, 512 * mb, 100 * mb));
    CHECK_FALSE(ktstr::pvh_fits(image, 160 * mb, 130 * mb));  // would overwrite the kernel
    CHECK_FALSE(ktstr::pvh_fits(image, 128 * mb, 200 * mb));  // larger than memory
    CHECK(ktstr::pvh_fits(image, 8192 * mb, 1500 * mb));      // only low memory counts
    CHECK_FALSE(ktstr::pvh_fits(image, 8192 * mb, 2000 * mb));
}
