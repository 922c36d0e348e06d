// The initramfs writer, checked against GNU cpio and a small newc reader.
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "command_output.hpp"
#include "ktstr/error.hpp"
#include "ktstr/fd.hpp"
#include "ktstr/guest_image.hpp"
#include "ktstr/include_files.hpp"
#include "ktstr/initramfs.hpp"
#include "ktstr/temp_dir.hpp"
#include "scoped_env.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::ContainsSubstring;
using ktstr::ArchiveEntries;
using ktstr::ArchiveEntry;
using ktstr::EntryKind;

namespace {

const fs::path kBusybox = "/bin/busybox";

void write_file(const fs::path& path, const std::string& content, mode_t mode = 0644) {
    std::ofstream(path, std::ios::binary) << content;
    REQUIRE(::chmod(path.c_str(), mode) == 0);
}

std::string read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

// What is in `dir` but the lock every TempDir holds.
std::vector<std::string> dir_listing(const fs::path& dir) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.path().filename() != ktstr::kTempDirLock) names.push_back(e.path().filename());
    return names;
}

std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
}

ArchiveEntry generated(const std::string& path, const std::string& data, uint32_t mode = 0) {
    ArchiveEntry e;
    e.archive_path = path;
    e.data = data;
    e.mode = mode;
    e.reason = "test";
    return e;
}

ArchiveEntry host_file(const std::string& path, const fs::path& host) {
    ArchiveEntry e = generated(path, "");
    e.host_path = host;
    return e;
}

ArchiveEntry link_entry(const std::string& path, const std::string& target) {
    ArchiveEntry e = generated(path, "");
    e.kind = EntryKind::Symlink;
    e.link_target = target;
    return e;
}

struct NewcRecord {
    std::string name;
    uint32_t ino, mode, uid, gid, nlink, mtime, size;
    std::string data;
};

size_t align4(size_t n) {
    return (n + 3) & ~size_t{3};
}

uint32_t field(const std::string& bytes, size_t header, int index) {
    return static_cast<uint32_t>(std::stoul(bytes.substr(header + 6 + 8 * index, 8), nullptr, 16));
}

// A strict reader of one archive starting at `at`, which it moves past the
// trailer's padding: every header must sit at a 4-byte boundary.
std::vector<NewcRecord> read_newc(const std::string& bytes, size_t& at) {
    std::vector<NewcRecord> records;
    for (;;) {
        REQUIRE(at % 4 == 0);
        REQUIRE(bytes.compare(at, 6, "070701") == 0);
        NewcRecord r{};
        r.ino = field(bytes, at, 0), r.mode = field(bytes, at, 1), r.uid = field(bytes, at, 2);
        r.gid = field(bytes, at, 3), r.nlink = field(bytes, at, 4), r.mtime = field(bytes, at, 5);
        r.size = field(bytes, at, 6);
        uint32_t name_size = field(bytes, at, 11);
        r.name = bytes.substr(at + 110, name_size - 1);
        REQUIRE(bytes[at + 110 + name_size - 1] == '\0');
        at = align4(at + 110 + name_size);
        r.data = bytes.substr(at, r.size);
        at = align4(at + r.size);
        if (r.name == "TRAILER!!!") return records;
        records.push_back(r);
    }
}

std::vector<NewcRecord> read_newc(const std::string& bytes) {
    size_t at = 0;
    auto records = read_newc(bytes, at);
    CHECK(at == bytes.size());
    return records;
}

// A small tree of real files: plain, executable, private, binary, odd names, links.
struct SourceTree {
    ktstr::TempDir tmp{"ktstr-src"};
    fs::path dir = tmp.path() / "tree";

    SourceTree() {
        fs::create_directories(dir / "sub" / "deeper");
        write_file(dir / "plain", "plain text\n");
        write_file(dir / "run.sh", "#!/bin/sh\necho hi\n", 0755);
        write_file(dir / "private", "secret", 0600);
        write_file(dir / "sub" / "binary",
                   std::string("\0\x01\xff\r\n", 5) + std::string(9999, 'b'));
        write_file(dir / "sub" / "deeper" / "three", "333");
        write_file(dir / "with space 'q' $x", "odd");
        write_file(dir / "-dash", "dash");
        REQUIRE(::symlink("../plain", (dir / "sub" / "up").c_str()) == 0);
        REQUIRE(::symlink("/no/such/target", (dir / "dangling").c_str()) == 0);
        REQUIRE(::chmod((dir / "sub").c_str(), 0750) == 0);
    }

    ArchiveEntries entries() const {
        auto entries = ktstr::resolve_include_files({{dir.native(), "-i"}});
        entries.push_back(generated("/ktstr/job.json", "{\"test\": 1}\n"));
        entries.push_back(generated("/etc/empty", "", 0600));
        entries.push_back(link_entry("/bin/sh", "busybox"));
        return entries;
    }
};

const std::vector<std::string> kTreePaths = {
    "bin",
    "bin/sh",
    "etc",
    "etc/empty",
    "include-files",
    "include-files/tree",
    "include-files/tree/-dash",
    "include-files/tree/dangling",
    "include-files/tree/plain",
    "include-files/tree/private",
    "include-files/tree/run.sh",
    "include-files/tree/sub",
    "include-files/tree/sub/binary",
    "include-files/tree/sub/deeper",
    "include-files/tree/sub/deeper/three",
    "include-files/tree/sub/up",
    "include-files/tree/with space 'q' $x",
    "ktstr",
    "ktstr/job.json",
};

mode_t mode_of(const fs::path& path) {
    struct stat st;
    REQUIRE(::lstat(path.c_str(), &st) == 0);
    return st.st_mode;
}

long peak_rss_kib() {
    rusage usage{};
    REQUIRE(::getrusage(RUSAGE_SELF, &usage) == 0);
    return usage.ru_maxrss;
}

}  // namespace

TEST_CASE("cpio -t lists exactly the archive's paths, parents first", "[initramfs]") {
    SourceTree tree;
    ktstr::TempDir out_dir;
    auto out = out_dir.path() / "initramfs.cpio";
    ktstr::write_initramfs(tree.entries(), out);

    CHECK(lines(command_output("cpio -t --quiet < " + out.native())) == kTreePaths);
}

TEST_CASE("cpio -idm extracts the same bytes, links and permissions", "[initramfs]") {
    SourceTree tree;
    ktstr::TempDir out_dir;
    auto out = out_dir.path() / "initramfs.cpio";
    ktstr::write_initramfs(tree.entries(), out);
    auto root = out_dir.path() / "root";
    fs::create_directory(root);
    command_output("cd " + root.native() + " && cpio -idm --quiet < " + out.native());

    auto got = root / "include-files" / "tree";
    for (const char* name : {"plain", "run.sh", "private", "sub/binary", "sub/deeper/three",
                             "with space 'q' $x", "-dash"}) {
        INFO(name);
        CHECK(read_file(got / name) == read_file(tree.dir / name));
        CHECK((mode_of(got / name) & 07777) == (mode_of(tree.dir / name) & 07777));
    }
    CHECK(fs::read_symlink(got / "sub" / "up") == "../plain");
    CHECK(fs::read_symlink(got / "dangling") == "/no/such/target");
    CHECK(fs::read_symlink(root / "bin" / "sh") == "busybox");
    CHECK((mode_of(got / "sub") & 07777) == 0750);
    CHECK(read_file(root / "ktstr" / "job.json") == "{\"test\": 1}\n");
    CHECK((mode_of(root / "ktstr" / "job.json") & 07777) == 0644);
    CHECK((mode_of(root / "etc" / "empty") & 07777) == 0600);
    CHECK(fs::file_size(root / "etc" / "empty") == 0);
}

TEST_CASE("the newc records are fixed: owner 0, mtime 0, sequential inodes", "[initramfs]") {
    SourceTree tree;
    ktstr::TempDir out_dir;
    auto out = out_dir.path() / "initramfs.cpio";
    ktstr::write_initramfs(tree.entries(), out);

    auto records = read_newc(read_file(out));
    REQUIRE(records.size() == kTreePaths.size());
    for (size_t i = 0; i < records.size(); ++i) {
        const auto& r = records[i];
        INFO(r.name);
        CHECK(r.name == kTreePaths[i]);
        CHECK(r.ino == i + 1);
        CHECK((r.uid == 0 && r.gid == 0 && r.mtime == 0));
        CHECK(r.nlink == (S_ISDIR(r.mode) ? 2u : 1u));
    }
    CHECK(records[1].mode == (S_IFLNK | 0777));
    CHECK(records[1].data == "busybox");
    CHECK(records[0].mode == (S_IFDIR | 0755));
}

TEST_CASE("the same input gives byte-identical archives", "[initramfs]") {
    ktstr::TempDir out_dir;
    auto first = out_dir.path() / "first.cpio";
    auto second = out_dir.path() / "second.cpio";
    {
        SourceTree tree;
        ktstr::write_initramfs(tree.entries(), first);
    }
    // A new tree: other inodes, other mtimes, entries in another order.
    SourceTree tree;
    auto entries = tree.entries();
    std::reverse(entries.begin(), entries.end());
    write_file(tree.dir / "plain", "plain text\n");
    ktstr::write_initramfs(entries, second);

    CHECK(read_file(first) == read_file(second));
}

TEST_CASE("write_cpio streams to a pipe and appends to a file", "[initramfs]") {
    ktstr::TempDir tmp;
    auto source = tmp.path() / "source";
    write_file(source, std::string(3 << 20, 's') + "end", 0700);
    ArchiveEntries entries{host_file("/a/b/c", source), generated("/a/d", "data")};

    SECTION("a pipe: what cpio reads from its stdin") {
        auto listing = tmp.path() / "listing";
        FILE* cpio = ::popen(("cpio -t --quiet > " + listing.native()).c_str(), "w");
        REQUIRE(cpio);
        ktstr::write_cpio(entries, ::fileno(cpio));
        REQUIRE(::pclose(cpio) == 0);
        CHECK(lines(read_file(listing)) == std::vector<std::string>{"a", "a/b", "a/b/c", "a/d"});
    }
    SECTION("an O_APPEND file: a second archive follows the first, 4-byte aligned") {
        auto out = tmp.path() / "layers.cpio";
        {
            auto fd = ktstr::Fd::open(out.native(), O_WRONLY | O_CREAT | O_APPEND);
            ktstr::write_cpio(entries, fd.get());
            ktstr::write_cpio({generated("/ktstr/job.json", "{}")}, fd.get());
        }
        std::string bytes = read_file(out);
        size_t at = 0;
        auto first = read_newc(bytes, at);
        auto second = read_newc(bytes, at);
        CHECK(at == bytes.size());
        REQUIRE(first.size() == 4);
        bool same_source = first[2].data == read_file(source);
        CHECK(same_source);
        CHECK(first[2].mode == (S_IFREG | 0700));
        REQUIRE(second.size() == 2);
        CHECK(second[1].name == "ktstr/job.json");
    }
}

TEST_CASE("a failed write leaves nothing at out and no temp file", "[initramfs]") {
    SourceTree tree;
    auto entries = tree.entries();
    ktstr::TempDir out_dir;
    auto out = out_dir.path() / "initramfs.cpio";

    SECTION("a source file removed after resolving, with earlier files already written") {
        fs::remove(tree.dir / "with space 'q' $x");
        CHECK_THROWS_WITH(ktstr::write_initramfs(entries, out),
                          ContainsSubstring("cannot open") && ContainsSubstring("with space"));
    }
    SECTION("a source that is a fifo is refused, without blocking") {
        auto fifo = tree.tmp.path() / "fifo";
        REQUIRE(::mkfifo(fifo.c_str(), 0644) == 0);
        entries.push_back(host_file("/zz/fifo", fifo));
        CHECK_THROWS_WITH(ktstr::write_initramfs(entries, out),
                          ContainsSubstring("not a regular file"));
    }
    SECTION("a source whose size changes while it is copied") {
        // procfs reports size 0 and then produces bytes: the header would lie.
        entries.push_back(host_file("/zz/status", "/proc/self/status"));
        CHECK_THROWS_WITH(ktstr::write_initramfs(entries, out),
                          ContainsSubstring("'/proc/self/status'") && ContainsSubstring("grew"));
    }
    SECTION("a 4 GiB source") {
        auto big = tree.tmp.path() / "big";
        write_file(big, "");
        REQUIRE(::truncate(big.c_str(), 1LL << 32) == 0);
        entries.push_back(host_file("/zz/big", big));
        CHECK_THROWS_WITH(
            ktstr::write_initramfs(entries, out),
            ContainsSubstring("'" + big.native() + "'") && ContainsSubstring("4 GiB"));
    }
    CHECK(dir_listing(out_dir.path()).empty());
}

TEST_CASE("a write removes the partial archive a killed writer left beside out", "[initramfs]") {
    ktstr::TempDir tmp;
    auto out = tmp.path() / "out.cpio";
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        new ktstr::PartFile(tmp.path(), "out.cpio");  // never committed nor removed
        ::_exit(0);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    auto parts = [&] {
        size_t n = 0;
        for (const auto& e : fs::directory_iterator(tmp.path()))
            n += ktstr::is_part_file(e.path().filename().native());
        return n;
    };
    REQUIRE(parts() == 1);

    ktstr::write_initramfs({generated("/x", "x")}, out);
    CHECK(parts() == 0);
    CHECK(fs::exists(out));
}

TEST_CASE("a failed write keeps the old archive at out untouched", "[initramfs]") {
    ktstr::TempDir out_dir;
    auto out = out_dir.path() / "initramfs.cpio";
    write_file(out, "the old archive");

    CHECK_THROWS(ktstr::write_initramfs({host_file("/x", out_dir.path() / "missing")}, out));
    CHECK(read_file(out) == "the old archive");
    CHECK(dir_listing(out_dir.path()) == std::vector<std::string>{"initramfs.cpio"});
}

TEST_CASE("bad layouts are refused before writing", "[initramfs]") {
    ktstr::TempDir out_dir;
    auto out = out_dir.path() / "initramfs.cpio";

    CHECK_THROWS_WITH(ktstr::write_initramfs({generated("relative", "")}, out),
                      ContainsSubstring("not an absolute path"));
    CHECK_THROWS_WITH(ktstr::write_initramfs({generated("/a/../b", "")}, out),
                      ContainsSubstring("'..'"));
    CHECK_THROWS_WITH(
        ktstr::write_initramfs({link_entry("/lib", "usr/lib"), generated("/lib/x", "")}, out),
        ContainsSubstring("its parent '/lib'"));
    CHECK_THROWS_WITH(ktstr::write_initramfs({generated("/x", "1"), generated("/x", "2")}, out),
                      ContainsSubstring("cannot add '/x'"));
    CHECK(dir_listing(out_dir.path()).empty());

    ArchiveEntry root = generated("/", "");
    root.kind = EntryKind::Directory;
    ktstr::write_initramfs({root, generated("/x", "1"), generated("/x", "1")}, out);
    CHECK(lines(command_output("cpio -t --quiet < " + out.native())) ==
          std::vector<std::string>{"x"});
}

TEST_CASE("the base layer holds /init, busybox, two links and the applet list", "[initramfs]") {
    ktstr::TempDir tmp;
    auto init = tmp.path() / "ktstr-init";
    write_file(init, "not really an init", 0700);

    auto entries = ktstr::base_layer(init, kBusybox);
    auto out = tmp.path() / "base.cpio";
    ktstr::write_initramfs(entries, out);
    auto root = tmp.path() / "root";
    fs::create_directory(root);
    command_output("cd " + root.native() + " && cpio -idm --quiet < " + out.native());

    CHECK(read_file(root / "init") == "not really an init");
    CHECK((mode_of(root / "init") & 07777) == 0755);
    bool same_busybox = read_file(root / "bin" / "busybox") == read_file(kBusybox);
    CHECK(same_busybox);
    CHECK(fs::read_symlink(root / "bin" / "sh") == "/bin/busybox");
    CHECK(fs::read_symlink(root / "usr" / "bin" / "env") == "/bin/busybox");
    CHECK(fs::is_symlink(root / "bin" / "busybox") == false);
    for (const char* dir : {"proc", "sys", "dev", "tmp", "run", "include-files", "ktstr"})
        CHECK(fs::is_directory(root / dir));
    CHECK((mode_of(root / "tmp") & 07777) == 01777);

    // No link per applet: those are archive entries the kernel unpacks at every boot.
    size_t links = 0;
    for (const auto& e : entries) links += e.kind == EntryKind::Symlink;
    CHECK(links == 2);

    // The list names every applet busybox lists, by its bare name, except busybox itself and
    // the two that could stand in for PID 1.
    auto listed = lines(read_file(root / "ktstr" / "busybox-applets"));
    std::vector<std::string> expected;
    for (auto name : lines(command_output(kBusybox.native() + " --list"))) {
        if (name != "busybox" && name != "init" && name != "linuxrc") expected.push_back(name);
    }
    std::sort(listed.begin(), listed.end());
    std::sort(expected.begin(), expected.end());
    CHECK(listed == expected);
    CHECK(std::count(listed.begin(), listed.end(), "awk") == 1);
    CHECK(std::count(listed.begin(), listed.end(), "init") == 0);
}

TEST_CASE("an executable include file named like a busybox applet gets a warning", "[initramfs]") {
    ktstr::TempDir tmp;
    auto init = tmp.path() / "ktstr-init";
    write_file(init, "not really an init", 0700);
    ScopedEnv use_init("KTSTR_INIT", init.native());
    auto tools = tmp.path() / "tools";
    fs::create_directory(tools);
    write_file(tools / "taskset", "#!/bin/sh\n", 0755);
    write_file(tools / "mytool", "#!/bin/sh\n", 0755);
    write_file(tools / "nproc", "data, not a program\n", 0644);

    std::vector<ktstr::IncludeSpec> specs;
    for (const char* name : {"taskset", "mytool", "nproc"})
        specs.push_back({(tools / name).native(), "-i"});
    std::string warnings = stderr_of([&] { ktstr::guest_layout(specs, ktstr::KernelInfo{}); });

    CHECK_THAT(warnings, ContainsSubstring("/include-files/taskset has the name of a busybox "
                                           "applet: in the guest's shell, `taskset` runs "
                                           "busybox's"));
    CHECK_THAT(warnings, !ContainsSubstring("mytool") && !ContainsSubstring("nproc"));
}

TEST_CASE("the guest PATH lists include-file directories deepest first", "[initramfs]") {
    ktstr::TempDir tmp;
    auto script = tmp.path() / "script";
    auto data = tmp.path() / "data";
    write_file(script, "#!/bin/sh\n", 0755);
    write_file(data, "x", 0644);
    auto file = [](std::string at, const fs::path& from, uint32_t mode = 0) {
        ArchiveEntry e;
        e.archive_path = std::move(at);
        e.host_path = from;
        e.mode = mode;
        return e;
    };
    auto link = [](std::string at, std::string target) {
        ArchiveEntry e;
        e.archive_path = std::move(at);
        e.kind = EntryKind::Symlink;
        e.link_target = std::move(target);
        return e;
    };
    ArchiveEntries entries = {
        file("/bin/busybox", script),
        file("/include-files/a/bin/tool", script),
        file("/include-files/a/other", script),
        file("/include-files/b/bin/tool", data, 0750),  // its own mode wins over the host's
        file("/include-files/c/d/e/tool", script),
        file("/include-files/at-root", script),
        file("/include-files/data/not-executable", data),
        file("/include-files/modeless/plain", script, 0644),
        link("/include-files/links/up", "../a/other"),     // an executable, by a link
        link("/include-files/links2/bb", "/bin/busybox"),  // absolute, inside the archive
        link("/include-files/dangling/x", "/nowhere"),     // nothing there
        link("/include-files/loop/x", "y"),                // a loop ends too
        link("/include-files/loop/y", "x"),
        file("/usr/lib/tool", script),         // outside /include-files
        file("/include-filesX/tool", script),  // a prefix, not the directory
    };
    CHECK(ktstr::guest_path(entries) ==
          "/include-files/c/d/e:/include-files/a/bin:/include-files/b/bin:/include-files/a:"
          "/include-files/links:/include-files/links2:/include-files:/bin:/sbin:/usr/bin:"
          "/usr/sbin");
    CHECK(ktstr::guest_path({}) == "/include-files:/bin:/sbin:/usr/bin:/usr/sbin");
}

TEST_CASE("the base layer names a missing init or busybox", "[initramfs]") {
    ktstr::TempDir tmp;
    auto missing = tmp.path() / "missing";
    CHECK_THROWS_WITH(ktstr::base_layer(missing, kBusybox),
                      ContainsSubstring("cannot find guest init '" + missing.native() + "'"));
    CHECK_THROWS_WITH(ktstr::base_layer(kBusybox, missing),
                      ContainsSubstring("cannot find busybox '" + missing.native() + "'"));
    CHECK_THROWS_WITH(ktstr::base_layer(kBusybox, "/bin/true"),
                      ContainsSubstring("cannot list busybox applets"));
}

TEST_CASE("format_layout lists every archive entry in aligned columns", "[initramfs]") {
    ktstr::TempDir tmp;
    write_file(tmp.path() / "fio", "12345", 0755);
    auto entries = ktstr::resolve_include_files({{(tmp.path() / "fio").native(), "-i"}});
    entries.push_back(generated("/ktstr/job.json", "{}"));
    entries.push_back(link_entry("/bin/sh", "/bin/busybox"));

    auto text = lines(ktstr::format_layout(entries));
    REQUIRE(text.size() == 6);
    CHECK(text[0].rfind("/bin ", 0) == 0);
    CHECK_THAT(text[1], ContainsSubstring("-> /bin/busybox"));
    CHECK_THAT(text[3], ContainsSubstring(tmp.path().native()) && ContainsSubstring(" 5  ") &&
                            ContainsSubstring("include file"));
    CHECK_THAT(text[5], ContainsSubstring("(generated)") && ContainsSubstring(" 2  test"));
    size_t source_column = text[1].find("-> ");
    for (const auto& line : text) {
        INFO(line);
        CHECK(line.substr(source_column - 2, 2) == "  ");
        CHECK(line[source_column] != ' ');
    }

    // A newline or other control byte in a name shows escaped: one entry, one line.
    entries.push_back(link_entry("/include-files/two\nlines\tand\x01\\", "to\nx"));
    auto escaped = lines(ktstr::format_layout(entries));
    REQUIRE(escaped.size() == 7);
    CHECK_THAT(escaped[4], ContainsSubstring("/include-files/two\\nlines\\tand\\x01\\\\") &&
                               ContainsSubstring("-> to\\nx"));
}

TEST_CASE("a 50 MB file is streamed, not held in memory", "[initramfs]") {
    ktstr::TempDir tmp;
    auto big = tmp.path() / "big";
    {
        std::ofstream out(big, std::ios::binary);
        std::string chunk(1 << 20, 'x');
        for (int i = 0; i < 50; ++i) out << chunk;
    }

    // Writing 5 resets the peak RSS (VmHWM), so the peak is this test's own.
    std::ofstream("/proc/self/clear_refs") << "5";
    long before = peak_rss_kib();
    auto out = tmp.path() / "big.cpio";
    ktstr::write_initramfs({host_file("/big", big)}, out);
    long grown_kib = peak_rss_kib() - before;

    INFO("peak RSS grew by " << grown_kib << " KiB");
    CHECK(grown_kib < 8 * 1024);
    CHECK(fs::file_size(out) > 50u << 20);
}
