// The sweep of temp dirs left by killed runs: real processes own them, real SIGKILLs end them.
#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "forked_child.hpp"
#include "ktstr/fd.hpp"
#include "ktstr/temp_dir.hpp"
#include "scoped_env.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::ContainsSubstring;
using namespace std::chrono_literals;

namespace {

void write_file(const fs::path& p, const std::string& text) {
    std::ofstream(p) << text;
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

bool present(const fs::path& p) {
    return fs::exists(fs::symlink_status(p));
}

// A run in a child process: it makes a TempDir in $TMPDIR, fills it as ktstr does (files, a
// subdirectory, a link out to `outside`), says its path and waits until it is killed.
class Run {
  public:
    explicit Run(const fs::path& outside) {
        auto pipe = ktstr::Pipe::make();
        pid_ = fork_child([&] {
            pipe.read.reset();
            ktstr::TempDir dir("ktstr-vm");
            write_file(dir.path() / "qemu.stderr", "qemu's words");
            fs::create_directory(dir.path() / "sub");
            write_file(dir.path() / "sub" / "initramfs.cpio", "an archive");
            fs::create_symlink(outside, dir.path() / "sub" / "outside");
            auto line = dir.path().string() + "\n";
            ktstr::write_all(pipe.write.get(), line.data(), line.size(), "the path");
            for (;;) ::pause();
            return 0;
        });
        pipe.write.reset();
        path_ = read_line(pipe.read.get());
        REQUIRE(fs::is_directory(path_));
    }
    ~Run() { kill(); }
    void kill() { kill_child(pid_); }
    const fs::path& path() const { return path_; }

  private:
    pid_t pid_ = -1;
    fs::path path_;
};

// A private $TMPDIR, and a file outside it that no sweep may touch.
struct PrivateTmp {
    ktstr::TempDir base{"ktstr-sweep-test"};
    fs::path tmp = base.path() / "tmp";
    fs::path outside = base.path() / "outside";
    std::optional<ScopedEnv> env;
    PrivateTmp() {
        fs::create_directory(tmp);
        write_file(outside, "keep me");
        env.emplace("TMPDIR", tmp.string());
    }
};

// A directory looking like a TempDir whose owner is gone: a lock file nobody holds.
fs::path unlocked_dir(const fs::path& path) {
    fs::create_directory(path);
    write_file(path / ktstr::kTempDirLock, "");
    write_file(path / "qemu.stderr", "qemu's words");
    return path;
}

void age(const fs::path& p, std::chrono::seconds by) {
    timespec times[2] = {{::time(nullptr) - by.count(), 0}, {::time(nullptr) - by.count(), 0}};
    REQUIRE(::utimensat(AT_FDCWD, p.c_str(), times, AT_SYMLINK_NOFOLLOW) == 0);
}

}  // namespace

TEST_CASE("a sweep removes a killed run's temp dir and keeps the live runs'", "[temp_dir]") {
    PrivateTmp t;
    Run killed(t.outside), alive(t.outside);
    ktstr::TempDir mine("ktstr-test");  // this process's own, alive
    killed.kill();
    REQUIRE(fs::exists(killed.path() / "sub" / "initramfs.cpio"));  // what a SIGKILL leaves

    auto sweep = ktstr::sweep_stale_temp_dirs(t.tmp);
    CHECK(sweep.removed == std::vector<fs::path>{killed.path()});
    CHECK(sweep.failed.empty());
    CHECK_FALSE(present(killed.path()));
    CHECK(read_file(alive.path() / "qemu.stderr") == "qemu's words");
    CHECK(present(alive.path() / "sub" / "outside"));
    CHECK(present(mine.path() / ktstr::kTempDirLock));
    CHECK(read_file(t.outside) == "keep me");

    alive.kill();
    CHECK(ktstr::sweep_stale_temp_dirs(t.tmp).removed == std::vector<fs::path>{alive.path()});
    CHECK(present(mine.path()));
    CHECK(read_file(t.outside) == "keep me");
}

TEST_CASE("a sweep takes only this user's ktstr temp dirs and never follows a link", "[temp_dir]") {
    PrivateTmp t;
    auto victim = unlocked_dir(t.base.path() / "victim");
    fs::create_directory_symlink(victim, t.tmp / "ktstr-vm.LINKED");
    unlocked_dir(t.tmp / "other.ABCDEF");  // not a ktstr prefix
    unlocked_dir(t.tmp / "ktstr-vm.toolongname");
    write_file(t.tmp / "ktstr-vm.FILE01", "a file");
    fs::create_directory(t.tmp / "ktstr-vm.LEGACY");  // no lock: another ktstr, or not ours
    write_file(t.tmp / "ktstr-vm.LEGACY" / "ctl.sock", "");
    age(t.tmp / "ktstr-vm.LEGACY", 120s);
    bool root = ::geteuid() == 0;
    if (root) {
        auto theirs = unlocked_dir(t.tmp / "ktstr-vm.NOBODY");
        REQUIRE(::chown(theirs.c_str(), 65534, 65534) == 0);
    }

    CHECK(ktstr::sweep_stale_temp_dirs(t.tmp).removed.empty());
    for (auto name : {"ktstr-vm.LINKED", "other.ABCDEF", "ktstr-vm.toolongname", "ktstr-vm.FILE01",
                      "ktstr-vm.LEGACY/ctl.sock"})
        CHECK(present(t.tmp / name));
    CHECK(present(victim / "qemu.stderr"));
    CHECK(present(victim / ktstr::kTempDirLock));
    if (root) CHECK(present(t.tmp / "ktstr-vm.NOBODY" / "qemu.stderr"));
}

TEST_CASE("a temp dir abandoned before it had its lock goes once a minute old", "[temp_dir]") {
    PrivateTmp t;
    fs::create_directory(t.tmp / "ktstr-vm.EMPTY1");  // killed right after mkdtemp
    fs::create_directory(t.tmp / "ktstr-vm.EMPTY2");  // killed while preparing its lock
    write_file(t.tmp / "ktstr-vm.EMPTY2" / ".ktstr-lock.new", "");
    fs::create_directory(t.tmp / "ktstr-vm.YOUNG1");  // may be a run making its own now
    age(t.tmp / "ktstr-vm.EMPTY1", 61s);
    age(t.tmp / "ktstr-vm.EMPTY2", 61s);

    auto removed = ktstr::sweep_stale_temp_dirs(t.tmp).removed;
    std::sort(removed.begin(), removed.end());
    CHECK(removed == std::vector<fs::path>{t.tmp / "ktstr-vm.EMPTY1", t.tmp / "ktstr-vm.EMPTY2"});
    CHECK(present(t.tmp / "ktstr-vm.YOUNG1"));
}

TEST_CASE("a stale temp dir that cannot be removed is a warning naming it", "[temp_dir]") {
    PrivateTmp t;
    auto stale = unlocked_dir(t.tmp / "ktstr-vm.STUCK1");
    auto stuck = stale / "stuck";
    write_file(stuck, "");
    // Root removes anything it may write to; an immutable file stops it, where the file
    // system has the flag. Anyone else is stopped by a directory without write permission.
    bool root = ::geteuid() == 0;
    auto file = ktstr::Fd::open(stuck.string(), O_RDONLY);
    int flags = 0;
    REQUIRE((!root || ::ioctl(file.get(), FS_IOC_GETFLAGS, &flags) == 0));
    flags |= FS_IMMUTABLE_FL;
    if (root && ::ioctl(file.get(), FS_IOC_SETFLAGS, &flags) != 0)
        SKIP("cannot make a file immutable here: " << std::strerror(errno));
    if (!root) fs::permissions(stale, fs::perms::owner_read | fs::perms::owner_exec);

    auto sweep = ktstr::sweep_stale_temp_dirs(t.tmp);
    flags &= ~FS_IMMUTABLE_FL;
    if (root) REQUIRE(::ioctl(file.get(), FS_IOC_SETFLAGS, &flags) == 0);
    fs::permissions(stale, fs::perms::owner_all);
    CHECK(sweep.removed.empty());
    REQUIRE(sweep.failed.size() == 1);
    CHECK_THAT(sweep.failed[0], ContainsSubstring("cannot remove '" + stale.string() + "'") &&
                                    ContainsSubstring("left by a ktstr run that has ended"));
    CHECK(present(stale / ktstr::kTempDirLock));  // the next sweep tries again

    CHECK(ktstr::sweep_stale_temp_dirs(t.tmp).removed == std::vector<fs::path>{stale});
}

TEST_CASE("runs starting, ending, dying and sweeping at once never lose a live temp dir",
          "[temp_dir]") {
    PrivateTmp t;
    auto runner = [&] {
        for (int i = 0; i < 150; ++i) {
            ktstr::TempDir dir("ktstr-vm");
            write_file(dir.path() / "ctl.sock", "in use");
            ktstr::sweep_stale_temp_dirs(t.tmp);
            if (read_file(dir.path() / "ctl.sock") != "in use") return 1;
        }
        return 0;
    };
    auto victim = [] {
        for (;;) ktstr::TempDir dir("ktstr-vm");
        return 0;
    };
    std::vector<pid_t> runners, victims;
    for (int i = 0; i < 3; ++i) runners.push_back(fork_child(runner));
    for (int i = 0; i < 2; ++i) victims.push_back(fork_child(victim));
    std::this_thread::sleep_for(200ms);
    for (pid_t v : victims) ::kill(v, SIGKILL), exit_code(v);

    for (pid_t r : runners) CHECK(exit_code(r) == 0);
    ktstr::sweep_stale_temp_dirs(t.tmp);
    // A victim killed between mkdtemp and its lock's rename leaves a directory without a lock
    // (empty, or with the lock it was preparing), young for a minute: a sweep keeps it till then.
    for (const auto& e : fs::directory_iterator(t.tmp)) {
        INFO(e.path());
        for (const auto& inside : fs::directory_iterator(e.path()))
            CHECK(inside.path().filename() == ".ktstr-lock.new");
    }
}
