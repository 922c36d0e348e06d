// The initramfs and PVH caches shared by runs: whole archives only; a writer killed mid-write
// leaves a temp file the next lookup removes at once, a live writer's (in this process or another)
// is never touched; the trim spares what runs use. Real forked writers, real SIGKILLs.
#include <catch2/catch_test_macros.hpp>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "command_output.hpp"
#include "forked_child.hpp"
#include "ktstr/error.hpp"
#include "ktstr/fd.hpp"
#include "ktstr/initramfs.hpp"
#include "ktstr/initramfs_cache.hpp"
#include "ktstr/pvh_image.hpp"
#include "ktstr/temp_dir.hpp"
#include "scoped_env.hpp"

namespace fs = std::filesystem;

namespace {

ktstr::ArchiveEntries one_file(const fs::path& file) {
    ktstr::ArchiveEntries entries(1);
    entries[0].archive_path = "/include-files/data";
    entries[0].host_path = file;
    entries[0].mode = 0644;
    entries[0].reason = "test";
    return entries;
}

std::string read_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

fs::path data_file(const fs::path& dir, const std::string& name, size_t size, char fill) {
    std::ofstream(dir / name) << std::string(size, fill);
    return dir / name;
}

// A cache writer in a child process, writing as the cache does: a PartFile beside `final`
// holding `entries`' archive. It says the PartFile's path, then waits for a byte on its input:
// it commits to `final` and exits 0 when it reads one (or is killed before).
class Writer {
  public:
    Writer(const fs::path& final, const ktstr::ArchiveEntries& entries) {
        auto says = ktstr::Pipe::make();
        auto hears = ktstr::Pipe::make();
        pid_ = fork_child([&] {
            says.read.reset();
            ktstr::PartFile part(final.parent_path(), final.filename().string());
            ktstr::write_cpio(entries, part.fd());
            auto line = part.path().string() + "\n";
            ktstr::write_all(says.write.get(), line.data(), line.size(), "the path");
            char go;
            if (::read(hears.read.get(), &go, 1) != 1) return 1;
            part.commit(final);
            return 0;
        });
        says.write.reset();
        go_ = std::move(hears.write);
        part_ = read_line(says.read.get());
        REQUIRE(fs::exists(part_));
    }
    ~Writer() { kill(); }
    void kill() { kill_child(pid_); }
    int commit() {
        ktstr::write_all(go_.get(), "g", 1, "the go");
        int rc = exit_code(pid_);
        pid_ = -1;
        return rc;
    }
    const fs::path& part() const { return part_; }

  private:
    pid_t pid_ = -1;
    ktstr::Fd go_;
    fs::path part_;
};

}  // namespace

TEST_CASE("a compressed archive is cached beside the plain one and hit the next time", "[cache]") {
    ktstr::TempDir dir;
    auto file = dir.path() / "data";
    std::ofstream(file) << std::string(100000, 'x');
    auto cache = dir.path() / "cache";
    auto first = ktstr::cached_initramfs(one_file(file), cache, ktstr::Compression::Zstd);
    CHECK_FALSE(first.hit);
    CHECK(first.path.filename() == first.key + ".cpio.zst");
    CHECK(fs::exists(cache / (first.key + ".cpio")));
    CHECK(first.unpacked_bytes == fs::file_size(cache / (first.key + ".cpio")));
    CHECK(fs::file_size(first.path) < first.unpacked_bytes);
    auto again = ktstr::cached_initramfs(one_file(file), cache, ktstr::Compression::Zstd);
    CHECK(again.hit);
    CHECK(again.path == first.path);
    CHECK(ktstr::cached_initramfs(one_file(file), cache).hit);  // the plain one too
}

TEST_CASE(
    "concurrent runs sharing the cache each get a whole archive, and leave no temp "
    "file",
    "[cache]") {
    ktstr::TempDir dir;
    auto file = dir.path() / "data";
    std::ofstream(file) << std::string(4 << 20, 'y');
    auto cache = dir.path() / "cache";
    ktstr::TempDir ref_dir;
    ktstr::write_initramfs(one_file(file), ref_dir.path() / "ref.cpio");
    auto expected = command_output("sha256sum < " + (ref_dir.path() / "ref.cpio").string());

    std::vector<fs::path> paths(6);
    std::vector<std::thread> runs;
    for (size_t i = 0; i < paths.size(); ++i)
        runs.emplace_back(
            [&, i] { paths[i] = ktstr::cached_initramfs(one_file(file), cache).path; });
    for (auto& t : runs) t.join();
    for (const auto& p : paths) {
        CHECK(p == paths[0]);
        CHECK(command_output("sha256sum < " + p.string()) == expected);
    }
    for (const auto& e : fs::directory_iterator(cache))
        CHECK(e.path().filename().string()[0] != '.');
}

TEST_CASE("a temp file of a ktstr from before the lock goes once ten minutes old", "[cache]") {
    ktstr::TempDir dir;
    auto file = dir.path() / "data";
    std::ofstream(file) << "z";
    auto cache = dir.path() / "cache";
    fs::create_directories(cache);
    auto stale = cache / ".deadbeef.cpio.AbCdEf";
    auto fresh = cache / ".cafe.cpio.GhIjKl";
    std::ofstream(stale) << "partial";
    std::ofstream(fresh) << "being written";
    fs::last_write_time(stale, fs::file_time_type::clock::now() - std::chrono::hours(1));
    ktstr::cached_initramfs(one_file(file), cache);
    CHECK_FALSE(fs::exists(stale));
    CHECK(fs::exists(fresh));  // no lock says whether its writer is alive
}

TEST_CASE("a killed writer's temp file goes at the next lookup, hit or miss", "[cache]") {
    ktstr::TempDir dir;
    auto cache = dir.path() / "cache";
    auto small = one_file(data_file(dir.path(), "small", 1000, 's'));
    auto big = one_file(data_file(dir.path(), "big", 3 << 20, 'b'));
    auto first = ktstr::cached_initramfs(small, cache);
    REQUIRE_FALSE(first.hit);

    Writer killed(cache / "0123.cpio", big);
    Writer alive(cache / "4567.cpio", big);
    auto part = killed.part();
    CHECK(part.filename().string().ends_with(".part"));
    killed.kill();
    REQUIRE(fs::exists(part));  // nothing removes it but a sweep

    SECTION("a hit") {
        CHECK(ktstr::cached_initramfs(small, cache).hit);
    }
    SECTION("a miss") {
        CHECK_FALSE(ktstr::cached_initramfs(big, cache).hit);
    }
    SECTION("a clean") {
        CHECK(ktstr::clean_initramfs_cache(cache) >= (3u << 20));
    }
    CHECK_FALSE(fs::exists(part));
    CHECK(fs::exists(alive.part()));
}

TEST_CASE("a live writer's temp file survives lookups and cleans, and its archive is whole",
          "[cache]") {
    ktstr::TempDir dir;
    auto cache = dir.path() / "cache";
    fs::create_directories(cache);
    auto entries = one_file(data_file(dir.path(), "data", 4 << 20, 'y'));
    auto other = one_file(data_file(dir.path(), "other", 1000, 'o'));
    ktstr::write_initramfs(entries, dir.path() / "ref.cpio");
    auto key = ktstr::initramfs_key(entries);

    Writer writer(cache / (key + ".cpio"), entries);
    ktstr::cached_initramfs(other, cache);  // a miss: sweeps, writes, trims
    ktstr::cached_initramfs(other, cache);  // a hit: sweeps
    ktstr::clean_initramfs_cache(cache);
    CHECK(ktstr::sweep_dead_writers(cache) == 0);
    REQUIRE(fs::exists(writer.part()));

    REQUIRE(writer.commit() == 0);
    CHECK_FALSE(fs::exists(writer.part()));
    CHECK(read_bytes(cache / (key + ".cpio")) == read_bytes(dir.path() / "ref.cpio"));
    auto hit = ktstr::cached_initramfs(entries, cache);
    CHECK(hit.hit);
    CHECK(read_bytes(hit.path) == read_bytes(dir.path() / "ref.cpio"));
}

TEST_CASE("a killed writer's temp file in the PVH cache goes at the next kernel lookup",
          "[cache]") {
    ktstr::TempDir dir;
    auto cache = dir.path() / "pvh";
    fs::create_directories(cache);
    auto kernel = data_file(dir.path(), "vmlinuz", 4096, 'k');
    auto entries = one_file(kernel);
    Writer killed(cache / "89ab.elf", entries);
    Writer alive(cache / "cdef.elf", entries);
    auto part = killed.part();
    killed.kill();
    // Not a kernel at all: refused, but the cache was looked at first.
    CHECK_THROWS_AS(ktstr::pvh_image(kernel, cache), ktstr::Error);
    CHECK_FALSE(fs::exists(part));
    CHECK(fs::exists(alive.part()));
    ktstr::clean_pvh_cache(cache);
    CHECK(fs::exists(alive.part()));
}

TEST_CASE("writers and sweeps racing never lose a live temp file", "[cache]") {
    ktstr::TempDir dir;
    std::atomic<bool> done{false};
    std::atomic<int> committed{0};
    std::vector<std::thread> threads;
    for (int s = 0; s < 2; ++s)
        threads.emplace_back([&] {
            while (!done) ktstr::sweep_dead_writers(dir.path());
        });
    std::vector<std::thread> writers;
    for (int w = 0; w < 4; ++w)
        writers.emplace_back([&, w] {
            for (int i = 0; i < 200; ++i) {
                auto name = "f" + std::to_string(w) + "-" + std::to_string(i);
                try {
                    ktstr::PartFile part(dir.path(), name);
                    ktstr::write_all(part.fd(), name.data(), name.size(), name);
                    part.commit(dir.path() / name);
                    if (read_bytes(dir.path() / name) == name) ++committed;
                } catch (const std::exception&) {
                }
            }
        });
    for (auto& t : writers) t.join();
    done = true;
    for (auto& t : threads) t.join();
    CHECK(committed == 800);
}

TEST_CASE("the trim never takes an archive a run holds in use, and keeps to the size", "[cache]") {
    ktstr::TempDir dir;
    auto cache = dir.path() / "cache";
    ScopedEnv max("KTSTR_CACHE_MAX_MB", "3");
    auto a = one_file(data_file(dir.path(), "a", 2 << 20, 'a'));
    auto b = one_file(data_file(dir.path(), "b", 2 << 20, 'b'));
    auto c = one_file(data_file(dir.path(), "c", 2 << 20, 'c'));

    std::optional<ktstr::CachedInitramfs> held = ktstr::cached_initramfs(a, cache);
    auto held_path = held->path;
    auto second = ktstr::cached_initramfs(b, cache);  // over 3 MB, but both are in use
    CHECK(fs::exists(held_path));
    CHECK(fs::exists(second.path));

    held.reset();
    auto second_path = second.path;
    second = ktstr::cached_initramfs(c, cache);  // b is let go here, after c's trim
    CHECK_FALSE(fs::exists(held_path));          // the least recently used, free: it went
    CHECK(fs::exists(second_path));              // still held during the trim
    CHECK(fs::exists(second.path));
}
