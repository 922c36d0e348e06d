// The include-file resolver and merge_entries, on real files in temp dirs.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "command_output.hpp"
#include "ktstr/error.hpp"
#include "ktstr/fd.hpp"
#include "ktstr/include_files.hpp"
#include "ktstr/search_path.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::ContainsSubstring;
using Catch::Matchers::Equals;
using ktstr::ArchiveEntries;
using ktstr::ArchiveEntry;
using ktstr::EntryKind;
using ktstr::IncludeSpec;
using ktstr::ResolveOptions;

namespace {

void write_file(const fs::path& path, const std::string& content, mode_t mode = 0644) {
    std::ofstream(path, std::ios::binary) << content;
    REQUIRE(::chmod(path.c_str(), mode) == 0);
}

void make_dir(const fs::path& path) {
    fs::create_directories(path);
}

void make_link(const std::string& target, const fs::path& link) {
    REQUIRE(::symlink(target.c_str(), link.c_str()) == 0);
}

std::vector<std::string> paths_of(const ArchiveEntries& entries) {
    std::vector<std::string> paths;
    for (const auto& e : entries) paths.push_back(e.archive_path);
    return paths;
}

const ArchiveEntry& entry_at(const ArchiveEntries& entries, const std::string& path) {
    for (const auto& e : entries)
        if (e.archive_path == path) return e;
    FAIL("no entry at " << path);
    throw;
}

ArchiveEntries resolve(const std::vector<std::string>& specs, const std::string& path = "") {
    std::vector<IncludeSpec> list;
    for (const auto& s : specs) list.push_back({s, "-i"});
    return ktstr::resolve_include_files(list, ResolveOptions{path});
}

// Runs the test body from another directory and comes back.
class InDirectory {
  public:
    explicit InDirectory(const fs::path& dir) : old_(fs::current_path()) { fs::current_path(dir); }
    ~InDirectory() { fs::current_path(old_); }

  private:
    fs::path old_;
};

// Sets $PATH for the test and restores it.
class PathVariable {
  public:
    explicit PathVariable(const std::string& value) {
        if (const char* old = std::getenv("PATH")) old_ = old;
        ::setenv("PATH", value.c_str(), 1);
    }
    ~PathVariable() {
        if (old_)
            ::setenv("PATH", old_->c_str(), 1);
        else
            ::unsetenv("PATH");
    }

  private:
    std::optional<std::string> old_;
};

ArchiveEntry file(const std::string& path, const fs::path& host, uint32_t mode,
                  const std::string& reason) {
    ArchiveEntry e;
    e.archive_path = path;
    e.host_path = host;
    e.mode = mode;
    e.reason = reason;
    return e;
}

}  // namespace

TEST_CASE("a file spec lands at /include-files/<name> with its mode", "[resolver]") {
    ktstr::TempDir tmp;
    write_file(tmp.path() / "tool", "#!/bin/sh\n", 0750);

    auto entries = resolve({(tmp.path() / "tool").native()});
    REQUIRE(entries.size() == 1);
    CHECK(entries[0].archive_path == "/include-files/tool");
    CHECK(entries[0].kind == EntryKind::File);
    CHECK(entries[0].mode == 0750);
    CHECK(entries[0].host_path == fs::canonical(tmp.path() / "tool"));
    CHECK_THAT(entries[0].reason, ContainsSubstring("-i"));
}

TEST_CASE("relative specs ./x and ../x are paths from the cwd", "[resolver]") {
    ktstr::TempDir tmp;
    make_dir(tmp.path() / "sub");
    write_file(tmp.path() / "up", "up");
    write_file(tmp.path() / "sub" / "here", "here");
    InDirectory in(tmp.path() / "sub");

    auto entries = resolve({"./here", "../up"});
    CHECK(paths_of(entries) ==
          std::vector<std::string>{"/include-files/here", "/include-files/up"});
    CHECK(entry_at(entries, "/include-files/up").host_path == fs::canonical(tmp.path() / "up"));
}

TEST_CASE("a missing path names the spec and its source", "[resolver]") {
    ktstr::TempDir tmp;
    InDirectory in(tmp.path());
    CHECK_THROWS_WITH(resolve({"./nope"}),
                      Equals("cannot find include file './nope' (from -i): No such file or "
                             "directory"));
    std::vector<IncludeSpec> specs{{"sub/nope", "payload fio"}};
    CHECK_THROWS_WITH(ktstr::resolve_include_files(specs),
                      Equals("cannot find include file 'sub/nope' (from payload fio): No such file "
                             "or directory"));
    CHECK_THROWS_WITH(resolve({""}), ContainsSubstring("empty name"));
}

TEST_CASE("a bare name takes the first executable regular file on PATH", "[resolver]") {
    ktstr::TempDir tmp;
    auto a = tmp.path() / "a", b = tmp.path() / "b", c = tmp.path() / "c", d = tmp.path() / "d";
    make_dir(a);
    make_dir(b / "tool");  // a directory is not a candidate
    make_dir(c);
    make_dir(d);
    write_file(a / "tool", "not executable", 0644);
    write_file(c / "tool", "the one", 0755);
    write_file(d / "tool", "too late", 0755);

    std::string path = a.native() + ":" + b.native() + ":" + c.native() + ":" + d.native();
    auto entries = resolve({"tool"}, path);
    REQUIRE(entries.size() == 1);
    CHECK(entries[0].archive_path == "/include-files/tool");
    CHECK(entries[0].host_path == fs::canonical(c / "tool"));
    CHECK(entries[0].mode == 0755);
}

TEST_CASE("a bare name not on PATH lists the directories searched", "[resolver]") {
    ktstr::TempDir tmp;
    make_dir(tmp.path() / "a");
    make_dir(tmp.path() / "b");
    std::string a = (tmp.path() / "a").native(), b = (tmp.path() / "b").native();

    std::vector<IncludeSpec> specs{{"nope", "payload fio"}};
    CHECK_THROWS_WITH(ktstr::resolve_include_files(specs, {a + ":" + b}),
                      ContainsSubstring("cannot find include file 'nope' (from payload fio)") &&
                          ContainsSubstring("searched " + a + ", " + b));
}

TEST_CASE("a bare name in the cwd is still searched on PATH only", "[resolver]") {
    ktstr::TempDir tmp;
    make_dir(tmp.path() / "empty");
    write_file(tmp.path() / "tool", "in the cwd", 0755);
    InDirectory in(tmp.path());

    // Empty PATH elements mean the cwd to a shell; the resolver skips them.
    std::string path = ":" + (tmp.path() / "empty").native() + "::";
    CHECK_THROWS_WITH(resolve({"tool"}, path),
                      ContainsSubstring("cannot find include file 'tool'") &&
                          ContainsSubstring("to pack the file of that name here, write ./tool"));
    CHECK(resolve({"./tool"}).size() == 1);

    // A directory of that name gets the same hint; a name that is nowhere gets none.
    make_dir(tmp.path() / "data");
    CHECK_THROWS_WITH(resolve({"data"}, path),
                      ContainsSubstring("to pack the directory of that name here, write ./data"));
    CHECK_THROWS_WITH(resolve({"nowhere"}, path), !ContainsSubstring("write ./"));
}

TEST_CASE("a file of the kernel's own filesystems is refused, not packed empty", "[resolver]") {
    CHECK_THROWS_WITH(resolve({"/proc/version"}),
                      ContainsSubstring("cannot include '/proc/version' (from -i): it is on the "
                                        "kernel's proc filesystem") &&
                          ContainsSubstring("would arrive empty"));
    CHECK_THROWS_WITH(resolve({"/sys/kernel"}), ContainsSubstring("kernel's sysfs filesystem"));
}

TEST_CASE("an empty search path means $PATH", "[resolver]") {
    ktstr::TempDir tmp;
    write_file(tmp.path() / "tool", "x", 0755);
    PathVariable path(tmp.path().native());

    auto entries = resolve({"tool"});
    REQUIRE(entries.size() == 1);
    CHECK(entries[0].host_path == fs::canonical(tmp.path() / "tool"));
}

TEST_CASE("a symlink spec is followed and keeps the spec's name", "[resolver]") {
    ktstr::TempDir tmp;
    write_file(tmp.path() / "real.bin", "bytes", 0700);
    make_link("real.bin", tmp.path() / "alias");

    auto entries = resolve({(tmp.path() / "alias").native()});
    REQUIRE(entries.size() == 1);
    CHECK(entries[0].archive_path == "/include-files/alias");
    CHECK(entries[0].kind == EntryKind::File);
    CHECK(entries[0].host_path == fs::canonical(tmp.path() / "real.bin"));
    CHECK(entries[0].mode == 0700);
}

TEST_CASE("a directory keeps its structure, sorted, with directory entries", "[resolver]") {
    ktstr::TempDir tmp;
    auto d = tmp.path() / "tools";
    make_dir(d / "sub" / "deeper");
    write_file(d / "b", "b", 0755);
    write_file(d / "a", "a", 0600);
    write_file(d / "sub" / "deeper" / "c", "c");
    ::chmod((d / "sub").c_str(), 0700);

    auto entries = resolve({d.native()});
    CHECK(paths_of(entries) ==
          std::vector<std::string>{"/include-files/tools", "/include-files/tools/a",
                                   "/include-files/tools/b", "/include-files/tools/sub",
                                   "/include-files/tools/sub/deeper",
                                   "/include-files/tools/sub/deeper/c"});
    CHECK(entry_at(entries, "/include-files/tools").kind == EntryKind::Directory);
    CHECK(entry_at(entries, "/include-files/tools/sub").mode == 0700);
    CHECK(entry_at(entries, "/include-files/tools/a").mode == 0600);
    CHECK(entry_at(entries, "/include-files/tools/sub/deeper/c").host_path ==
          fs::canonical(d / "sub" / "deeper" / "c"));
}

TEST_CASE("'dir/', '.' and '..' specs take the directory's own name", "[resolver]") {
    ktstr::TempDir tmp;
    make_dir(tmp.path() / "data" / "inner");
    write_file(tmp.path() / "data" / "f", "f");

    CHECK(resolve({(tmp.path() / "data").native() + "/"})[0].archive_path == "/include-files/data");
    InDirectory in(tmp.path() / "data" / "inner");
    CHECK(resolve({"."})[0].archive_path == "/include-files/inner");
    CHECK(resolve({".."})[0].archive_path == "/include-files/data");
    CHECK_THROWS_WITH(resolve({"/"}), ContainsSubstring("no name"));
}

TEST_CASE("symlinks inside a directory stay links, loops end, dangling links stay", "[resolver]") {
    ktstr::TempDir tmp;
    auto d = tmp.path() / "links";
    make_dir(d / "sub");
    make_link("b", d / "a");
    make_link("a", d / "b");
    make_link("..", d / "sub" / "up");
    make_link(".", d / "self");
    make_link("/nowhere/at all", d / "gone");

    auto entries = resolve({d.native()});
    CHECK(paths_of(entries) ==
          std::vector<std::string>{"/include-files/links", "/include-files/links/a",
                                   "/include-files/links/b", "/include-files/links/gone",
                                   "/include-files/links/self", "/include-files/links/sub",
                                   "/include-files/links/sub/up"});
    auto check_link = [&](const std::string& path, const std::string& target) {
        const auto& e = entry_at(entries, path);
        CHECK(e.kind == EntryKind::Symlink);
        CHECK(e.link_target == target);
    };
    check_link("/include-files/links/a", "b");
    check_link("/include-files/links/b", "a");
    check_link("/include-files/links/sub/up", "..");
    check_link("/include-files/links/self", ".");
    check_link("/include-files/links/gone", "/nowhere/at all");
}

TEST_CASE("fifos and sockets inside a directory are left out, each named; as a spec refused",
          "[resolver]") {
    ktstr::TempDir tmp;
    auto d = tmp.path() / "special";
    make_dir(d);
    write_file(d / "kept", "kept");
    REQUIRE(::mkfifo((d / "fifo").c_str(), 0644) == 0);

    ktstr::Fd sock(::socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::string sock_path = (d / "sock").native();
    REQUIRE(sock_path.size() < sizeof addr.sun_path);
    sock_path.copy(addr.sun_path, sock_path.size());
    REQUIRE(::bind(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);

    ktstr::ArchiveEntries entries;
    std::string warnings = stderr_of([&] { entries = resolve({d.native()}); });
    CHECK(paths_of(entries) ==
          std::vector<std::string>{"/include-files/special", "/include-files/special/kept"});
    CHECK_THAT(warnings,
               ContainsSubstring("not packing '" + (d / "fifo").native() +
                                 "', a fifo: found walking '" + d.native() + "' (from -i)"));
    CHECK_THAT(warnings,
               ContainsSubstring("not packing '" + (d / "sock").native() + "', a socket"));
    CHECK_THROWS_WITH(resolve({(d / "fifo").native()}),
                      ContainsSubstring("not a regular file or a directory"));
}

TEST_CASE("two different files wanting one archive path name both specs", "[resolver]") {
    ktstr::TempDir tmp;
    make_dir(tmp.path() / "one");
    make_dir(tmp.path() / "two");
    write_file(tmp.path() / "one" / "fio", "1");
    write_file(tmp.path() / "two" / "fio", "2");
    std::string one = (tmp.path() / "one" / "fio").native();
    std::string two = (tmp.path() / "two" / "fio").native();

    std::vector<IncludeSpec> specs{{one, "-i"}, {two, "payload fio"}};
    CHECK_THROWS_WITH(ktstr::resolve_include_files(specs),
                      ContainsSubstring("'" + one + "' (from -i)") &&
                          ContainsSubstring("'" + two + "' (from payload fio)") &&
                          ContainsSubstring("/include-files/fio"));

    make_dir(tmp.path() / "x" / "one");
    std::vector<IncludeSpec> dirs{{(tmp.path() / "one").native(), "-i"},
                                  {(tmp.path() / "x" / "one").native(), "-i"}};
    CHECK_THROWS_WITH(ktstr::resolve_include_files(dirs),
                      ContainsSubstring("both want /include-files/one,"));
}

TEST_CASE("one file given twice, however spelled, collapses", "[resolver]") {
    ktstr::TempDir tmp;
    make_dir(tmp.path() / "d");
    make_dir(tmp.path() / "e");
    write_file(tmp.path() / "d" / "f", "same");
    REQUIRE(::link((tmp.path() / "d" / "f").c_str(), (tmp.path() / "e" / "f").c_str()) == 0);

    auto d = tmp.path() / "d";
    auto entries = resolve({(d / "f").native(), d.native() + "/./f",
                            (d / ".." / "e" / "f").native(), d.native(), d.native() + "/"});
    CHECK(paths_of(entries) ==
          std::vector<std::string>{"/include-files/d", "/include-files/d/f", "/include-files/f"});
}

TEST_CASE("file names travel byte-exact", "[resolver]") {
    ktstr::TempDir tmp;
    auto d = tmp.path() / "odd";
    make_dir(d);
    const std::vector<std::string> names = {"-lead", "$HOME", "quote'\"s", "\xff\xfe\x80raw",
                                            "with space"};
    for (const auto& name : names) write_file(d / name, name);

    auto entries = resolve({d.native(), (d / "-lead").native(), (d / "\xff\xfe\x80raw").native()});
    std::vector<std::string> expected = {"/include-files/-lead", "/include-files/odd"};
    for (const auto& name : names) expected.push_back("/include-files/odd/" + name);
    expected.push_back("/include-files/\xff\xfe\x80raw");
    std::sort(expected.begin(), expected.end());
    CHECK(paths_of(entries) == expected);
    CHECK(entry_at(entries, "/include-files/odd/quote'\"s").host_path.native() ==
          fs::canonical(d).native() + "/quote'\"s");
}

TEST_CASE("a file of 4 GiB or more is refused, naming it", "[resolver]") {
    ktstr::TempDir tmp;
    auto big = tmp.path() / "big";
    auto fits = tmp.path() / "fits";
    write_file(big, "");
    write_file(fits, "");
    // Sparse: the size costs no disk.
    REQUIRE(::truncate(big.c_str(), 1LL << 32) == 0);
    REQUIRE(::truncate(fits.c_str(), (1LL << 32) - 1) == 0);

    CHECK(resolve({fits.native()}).size() == 1);
    CHECK_THROWS_WITH(resolve({big.native()}),
                      ContainsSubstring("'" + fs::canonical(big).native() + "'") &&
                          ContainsSubstring("4294967296 bytes"));
    CHECK_THROWS_WITH(resolve({tmp.path().native()}), ContainsSubstring("4 GiB"));
}

TEST_CASE("merge_entries collapses repeats and refuses clashes, naming both", "[resolver]") {
    ktstr::TempDir tmp;
    write_file(tmp.path() / "a", "a", 0755);
    write_file(tmp.path() / "b", "b", 0755);
    ArchiveEntries into{file("/x", tmp.path() / "a", 0755, "needed by /one")};

    SECTION("the same host file, spelled another way or with mode 0, collapses") {
        ktstr::merge_entries(into, {file("/x", tmp.path() / "a", 0755, "needed by /two"),
                                    file("/x", tmp.path() / "." / "a", 0, "again")});
        CHECK(into.size() == 1);
        CHECK(into[0].reason == "needed by /one");
    }
    SECTION("another host file at the same path is an error naming both") {
        CHECK_THROWS_WITH(
            ktstr::merge_entries(into, {file("/x", tmp.path() / "b", 0755, "needed by /two")}),
            ContainsSubstring("needed by /one") && ContainsSubstring("needed by /two") &&
                ContainsSubstring((tmp.path() / "a").native()) &&
                ContainsSubstring((tmp.path() / "b").native()));
    }
    SECTION("another mode is a clash") {
        CHECK_THROWS(ktstr::merge_entries(into, {file("/x", tmp.path() / "a", 0700, "other")}));
    }
    SECTION("directories collapse on equal mode, clash otherwise") {
        ArchiveEntry dir = file("/d", "", 0755, "one");
        dir.kind = EntryKind::Directory;
        ArchiveEntry other = dir;
        other.reason = "two";
        ktstr::merge_entries(into, {dir, other});
        CHECK(into.size() == 2);
        other.mode = 0700;
        CHECK_THROWS_WITH(ktstr::merge_entries(into, {other}),
                          ContainsSubstring("one") && ContainsSubstring("two"));
    }
    SECTION("links collapse on equal targets, clash otherwise") {
        ArchiveEntry link = file("/l", "", 0777, "one");
        link.kind = EntryKind::Symlink;
        link.link_target = "x";
        ArchiveEntry other = link;
        ktstr::merge_entries(into, {link, other});
        CHECK(into.size() == 2);
        other.link_target = "y";
        CHECK_THROWS_WITH(ktstr::merge_entries(into, {other}), ContainsSubstring("'y'"));
    }
    SECTION("a file and a directory at one path clash") {
        ArchiveEntry dir = file("/x", "", 0755, "dir");
        dir.kind = EntryKind::Directory;
        CHECK_THROWS(ktstr::merge_entries(into, {dir}));
    }
    SECTION("generated files collapse on equal data") {
        ArchiveEntry gen = file("/g", "", 0644, "one");
        gen.data = "hello";
        ktstr::merge_entries(into, {gen, gen});
        CHECK(into.size() == 2);
        gen.data = "bye";
        CHECK_THROWS_WITH(ktstr::merge_entries(into, {gen}), ContainsSubstring("generated"));
    }
}

TEST_CASE("a PATH list is split in order, leaving out empty elements", "[include]") {
    using V = std::vector<std::string>;
    CHECK(ktstr::split_search_path("") == V{});
    CHECK(ktstr::split_search_path("/bin") == V{"/bin"});
    CHECK(ktstr::split_search_path("/usr/bin:/bin") == V{"/usr/bin", "/bin"});
    // Empty elements would mean the cwd to a shell; ktstr never searches it by accident.
    CHECK(ktstr::split_search_path(":/a::/b dir:") == V{"/a", "/b dir"});
}
