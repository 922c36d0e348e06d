#include <sys/stat.h>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include "ktstr/elf_closure.hpp"
#include "ktstr/error.hpp"
#include "ktstr/fd.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::ContainsSubstring;
using ktstr::ArchiveEntries;
using ktstr::ArchiveEntry;
using ktstr::EntryKind;

namespace {

ArchiveEntry include_file(const std::string& archive_path, const fs::path& host_path) {
    ArchiveEntry entry;
    entry.archive_path = archive_path;
    entry.host_path = host_path;
    entry.reason = "include file";
    return entry;
}

std::map<std::string, ArchiveEntry> by_path(const ArchiveEntries& entries) {
    std::map<std::string, ArchiveEntry> map;
    for (const auto& entry : entries) map.emplace(entry.archive_path, entry);
    return map;
}

// The path with its directory symlinks resolved on the host: where the closure puts it.
std::string resolved_dir(const std::string& path) {
    fs::path p(path);
    return (fs::canonical(p.parent_path()) / p.filename()).string();
}

// Follows `path` through the archive's own symlinks, as the guest's kernel will; returns the
// File entry it ends at, or nullptr.
const ArchiveEntry* guest_lookup(const std::map<std::string, ArchiveEntry>& archive,
                                 std::string path) {
    for (int links = 0; links < 40; ++links) {
        std::string done;
        std::string rest = path;
        bool followed = false;
        while (!rest.empty() && !followed) {
            size_t slash = rest.find('/', 1);
            std::string part = rest.substr(0, slash);
            rest = slash == std::string::npos ? "" : rest.substr(slash);
            done += part;
            auto it = archive.find(done);
            if (it == archive.end() || it->second.kind != EntryKind::Symlink) continue;
            const std::string& target = it->second.link_target;
            std::string base = done.substr(0, done.rfind('/'));
            path = (target.starts_with('/') ? target : base + "/" + target) + rest;
            followed = true;
        }
        if (!followed) {
            auto it = archive.find(done);
            return it != archive.end() && it->second.kind == EntryKind::File ? &it->second
                                                                             : nullptr;
        }
    }
    return nullptr;
}

bool same_file(const fs::path& a, const fs::path& b) {
    struct stat sa, sb;
    return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

// "name => /path (0x...)" lines of ldd: the libraries the host's loader found.
std::set<std::string> ldd_libraries(const std::string& binary) {
    std::set<std::string> paths;
    FILE* pipe = ::popen(("ldd " + binary).c_str(), "r");
    REQUIRE(pipe);
    char line[4096];
    while (std::fgets(line, sizeof line, pipe)) {
        std::string text(line);
        size_t arrow = text.find(" => ");
        if (arrow == std::string::npos) continue;
        INFO(text);
        REQUIRE(text.find("not found") == std::string::npos);
        size_t start = arrow + 4;
        paths.insert(text.substr(start, text.find(" (", start) - start));
    }
    REQUIRE(::pclose(pipe) == 0);
    return paths;
}

std::set<std::string> needed_libraries(const ArchiveEntries& closure) {
    std::set<std::string> paths;
    for (const auto& entry : closure)
        if (entry.reason.starts_with("needed by ")) paths.insert(entry.archive_path);
    return paths;
}

void check_matches_ldd(const std::string& binary) {
    auto closure = ktstr::elf_closure({include_file("/include-files/prog", binary)});
    auto archive = by_path(closure);
    auto ldd = ldd_libraries(binary);
    REQUIRE(!ldd.empty());

    std::set<std::string> expected;
    for (const auto& path : ldd) expected.insert(resolved_dir(path));
    CHECK(needed_libraries(closure) == expected);

    for (const auto& path : ldd) {
        INFO(path);
        const ArchiveEntry* file = guest_lookup(archive, path);
        REQUIRE(file);
        CHECK(same_file(file->host_path, path));
    }
    const ArchiveEntry* interp = guest_lookup(archive, "/lib64/ld-linux-x86-64.so.2");
    REQUIRE(interp);
    CHECK(same_file(interp->host_path, "/lib64/ld-linux-x86-64.so.2"));
}

void run(const std::string& command) {
    INFO(command);
    REQUIRE(std::system(command.c_str()) == 0);
}

void write_file(const fs::path& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary);
    out << text;
    REQUIRE(out.good());
}

// A temp dir of test-built binaries: libw.so.1 (no deps), libv.so.1.2.3 (soname libv.so.1,
// needs libw.so.1), and programs that need libv.
struct Workshop {
    ktstr::TempDir tmp{"ktstr-elf"};
    fs::path root = fs::canonical(tmp.path());

    Workshop() {
        fs::create_directories(root / "src");
        write_file(root / "src/w.c", "int w(void) { return 3; }\n");
        write_file(root / "src/v.c", "int w(void);\nint v(void) { return w() + 1; }\n");
        write_file(root / "src/main.c", "int v(void);\nint main(void) { return v(); }\n");
    }

    // libv in <dir>/libv.so.1.2.3 with its soname link, libw in <wdir>/libw.so.1.
    void build_libs(const std::string& dir, const std::string& wdir,
                    const std::string& v_runpath = "") {
        fs::create_directories(root / dir);
        fs::create_directories(root / wdir);
        run("cc -shared -fPIC -o " + path(wdir + "/libw.so.1") + " " + path("src/w.c") +
            " -Wl,-soname,libw.so.1");
        run("cc -shared -fPIC -o " + path(dir + "/libv.so.1.2.3") + " " + path("src/v.c") +
            " -Wl,-soname,libv.so.1 " + path(wdir + "/libw.so.1") +
            (v_runpath.empty() ? "" : " -Wl,--enable-new-dtags -Wl,-rpath,'" + v_runpath + "'"));
        fs::create_symlink("libv.so.1.2.3", root / dir / "libv.so.1");
    }

    // A program needing libv.so.1, with `rpath` as DT_RUNPATH (new_dtags) or DT_RPATH.
    void build_program(const std::string& out, const std::string& libdir, const std::string& wdir,
                       const std::string& rpath, bool new_dtags) {
        fs::create_directories((root / out).parent_path());
        run("cc -o " + path(out) + " " + path("src/main.c") + " " + path(libdir + "/libv.so.1") +
            " -Wl,-rpath-link," + path(wdir) +
            (rpath.empty() ? "" : " -Wl,-rpath,'" + rpath + "'") + " -Wl," +
            (new_dtags ? "--enable-new-dtags" : "--disable-new-dtags"));
    }

    std::string path(const std::string& relative) const { return (root / relative).string(); }
};

}  // namespace

TEST_CASE("fio's closure has the libraries ldd finds, where it finds them", "[elf]") {
    check_matches_ldd("/usr/bin/fio");
}

TEST_CASE("stress-ng's closure has the libraries ldd finds, where it finds them", "[elf]") {
    check_matches_ldd("/usr/bin/stress-ng");
}

TEST_CASE("the closure keeps the interpreter's and directories' symlinks", "[elf]") {
    auto archive =
        by_path(ktstr::elf_closure({include_file("/include-files/fio", "/usr/bin/fio")}));

    // /lib64/ld-linux-x86-64.so.2 is reached through the /lib64 directory link and its own link.
    auto lib64 = fs::path("/lib64");
    if (fs::is_symlink(lib64)) {
        REQUIRE(archive.contains("/lib64"));
        CHECK(archive.at("/lib64").kind == EntryKind::Symlink);
        CHECK(archive.at("/lib64").link_target == fs::read_symlink(lib64).string());
    }
    std::string interp = resolved_dir("/lib64/ld-linux-x86-64.so.2");
    REQUIRE(archive.contains(interp));
    CHECK(archive.at(interp).reason == "interpreter of /include-files/fio");

    // No path is both a symlink and something under it.
    for (const auto& [path, entry] : archive) {
        if (entry.kind != EntryKind::Symlink) continue;
        auto after = archive.upper_bound(path + "/");
        bool nested = after != archive.end() && after->first.starts_with(path + "/");
        INFO(path);
        CHECK(!nested);
    }
}

TEST_CASE("the closure is sorted, free of duplicates and deterministic", "[elf]") {
    ArchiveEntries input{include_file("/include-files/fio", "/usr/bin/fio"),
                         include_file("/include-files/stress-ng", "/usr/bin/stress-ng")};
    auto first = ktstr::elf_closure(input);
    CHECK(first == ktstr::elf_closure(input));
    for (size_t i = 1; i < first.size(); ++i)
        CHECK(first[i - 1].archive_path < first[i].archive_path);
}

TEST_CASE("libc brings libgcc_s, and extra sonames are packed", "[elf]") {
    ktstr::ClosureOptions options;
    options.extra_sonames = {"libz.so.1"};
    auto archive = by_path(
        ktstr::elf_closure({include_file("/include-files/true", "/usr/bin/true")}, options));
    std::string libgcc = resolved_dir("/lib/x86_64-linux-gnu/libgcc_s.so.1");
    REQUIRE(archive.contains(libgcc));
    CHECK_THAT(archive.at(libgcc).reason, ContainsSubstring("dlopened by"));
    std::string libz = resolved_dir("/lib/x86_64-linux-gnu/libz.so.1");
    REQUIRE(archive.contains(libz));
    CHECK(archive.at(libz).reason == "wanted for dlopen by /include-files/true");

    options.extra_sonames = {"libktstr-nowhere.so.1"};
    CHECK_THROWS_WITH(
        ktstr::elf_closure({include_file("/include-files/true", "/usr/bin/true")}, options),
        ContainsSubstring("cannot find libktstr-nowhere.so.1 wanted for dlopen"));
}

TEST_CASE("an archive path already among the input gets no entry", "[elf]") {
    std::string libz = resolved_dir("/lib/x86_64-linux-gnu/libz.so.1");
    auto own = include_file(libz, "/usr/bin/true");
    auto closure = ktstr::elf_closure({include_file("/include-files/fio", "/usr/bin/fio"), own});
    CHECK(!by_path(closure).contains(libz));
}

TEST_CASE("the fio closure is quick", "[elf]") {
    auto start = std::chrono::steady_clock::now();
    auto closure = ktstr::elf_closure({include_file("/include-files/fio", "/usr/bin/fio")});
    auto took = std::chrono::steady_clock::now() - start;
    CHECK(closure.size() > 60);
    CHECK(took < std::chrono::milliseconds(500));
}

TEST_CASE("$ORIGIN comes from the program's real path, through symlinks", "[elf]") {
    Workshop w;
    w.build_libs("lib", "w", "$ORIGIN");
    w.build_program("bin/prog", "lib", "w", "$ORIGIN/../lib", true);
    // Seen from here, $ORIGIN/../lib would be far/lib, which does not exist.
    fs::create_directories(w.root / "far/away");
    fs::create_symlink("../../bin/prog", w.root / "far/away/prog");

    auto run_closure = [&] {
        return ktstr::elf_closure({include_file("/include-files/prog", w.root / "far/away/prog")});
    };
    // libw.so.1 is not yet where libv's RUNPATH ($ORIGIN) looks.
    CHECK_THROWS_WITH(
        run_closure(),
        ContainsSubstring("cannot find libw.so.1 needed by " + w.path("lib/libv.so.1") +
                          " (needed by /include-files/prog); searched: "));

    fs::copy_file(w.root / "w/libw.so.1", w.root / "lib/libw.so.1");
    run(w.path("far/away/prog") + "; test $? = 4");  // the host's loader agrees
    auto archive = by_path(run_closure());
    REQUIRE(archive.contains(w.path("lib/libv.so.1")));
    const auto& link = archive.at(w.path("lib/libv.so.1"));
    CHECK(link.kind == EntryKind::Symlink);
    CHECK(link.link_target == "libv.so.1.2.3");
    CHECK(link.reason == "needed by /include-files/prog");
    REQUIRE(archive.contains(w.path("lib/libv.so.1.2.3")));
    CHECK(archive.at(w.path("lib/libv.so.1.2.3")).kind == EntryKind::File);
    CHECK(archive.at(w.path("lib/libv.so.1.2.3")).reason == "target of " + w.path("lib/libv.so.1"));
    REQUIRE(archive.contains(w.path("lib/libw.so.1")));
    CHECK(archive.at(w.path("lib/libw.so.1")).reason == "needed by " + w.path("lib/libv.so.1"));

    // In the guest the program is reached through a link to its host path, so the loader's
    // $ORIGIN (the real directory, from /proc/self/exe) is bin/ there too.
    REQUIRE(archive.contains("/include-files/prog"));
    const auto& program = archive.at("/include-files/prog");
    CHECK(program.kind == EntryKind::Symlink);
    CHECK(program.link_target == fs::canonical(w.root / "bin/prog").string());
    const ArchiveEntry* bytes = guest_lookup(archive, "/include-files/prog");
    REQUIRE(bytes);
    CHECK(same_file(bytes->host_path, w.root / "bin/prog"));
    // $ORIGIN/../lib from there, folded.
    CHECK(guest_lookup(archive, fs::canonical(w.root / "lib").string() + "/libv.so.1"));
}

TEST_CASE("a program without $ORIGIN stays at its archive path", "[elf]") {
    Workshop w;
    w.build_libs("lib", "w", "$ORIGIN");
    fs::copy_file(w.root / "w/libw.so.1", w.root / "lib/libw.so.1");
    w.build_program("bin/prog", "lib", "w", w.path("lib"), true);
    auto archive =
        by_path(ktstr::elf_closure({include_file("/include-files/prog", w.root / "bin/prog")}));
    CHECK_FALSE(archive.contains("/include-files/prog"));
    CHECK_FALSE(archive.contains(fs::canonical(w.root / "bin/prog").string()));
}

TEST_CASE("add_elf_closure puts a relocated program's link in place of its file", "[elf]") {
    Workshop w;
    w.build_libs("lib", "w", "$ORIGIN");
    fs::copy_file(w.root / "w/libw.so.1", w.root / "lib/libw.so.1");
    w.build_program("bin/prog", "lib", "w", "$ORIGIN/../lib", true);
    ArchiveEntries entries{include_file("/include-files/prog", w.root / "bin/prog")};
    ktstr::add_elf_closure(entries);
    auto archive = by_path(entries);
    CHECK(archive.size() == entries.size());  // one entry a path
    CHECK(archive.at("/include-files/prog").kind == EntryKind::Symlink);
    CHECK(archive.at("/include-files/prog").reason ==
          "include file, a link to its host path for its $ORIGIN");
    CHECK(archive.contains(w.path("lib/libw.so.1")));
}

TEST_CASE("a library's $ORIGIN is the directory it was found in, as glibc has it", "[elf]") {
    Workshop w;
    // lib/libv.so.1 links to real/libv.so.1.2.3, whose RUNPATH $ORIGIN/w means lib/w, not real/w.
    w.build_libs("real", "lib/w", "$ORIGIN/w");
    fs::create_symlink("../real/libv.so.1", w.root / "lib/libv.so.1");
    w.build_program("bin/prog", "lib", "lib/w", "$ORIGIN/../lib", true);
    run(w.path("bin/prog") + "; test $? = 4");  // the host's loader agrees

    auto archive =
        by_path(ktstr::elf_closure({include_file("/include-files/prog", w.root / "bin/prog")}));
    REQUIRE(archive.contains(w.path("lib/w/libw.so.1")));
    CHECK(archive.at(w.path("lib/w/libw.so.1")).reason == "needed by " + w.path("lib/libv.so.1"));
    CHECK(archive.at(w.path("lib/libv.so.1")).link_target == "../real/libv.so.1");
    CHECK(archive.at(w.path("real/libv.so.1")).link_target == "libv.so.1.2.3");
    CHECK(archive.at(w.path("real/libv.so.1.2.3")).kind == EntryKind::File);
}

TEST_CASE("DT_RPATH is inherited by dependencies, DT_RUNPATH is not", "[elf]") {
    Workshop w;
    w.build_libs("lib", "wlib");
    // libw.so.1 is only in wlib, which only the program's search path names.
    w.build_program("rpath/prog", "lib", "wlib", "$ORIGIN/../lib:$ORIGIN/../wlib", false);
    w.build_program("runpath/prog", "lib", "wlib", "$ORIGIN/../lib:$ORIGIN/../wlib", true);

    // The host's loader agrees: 4 is main's result, 127 is ld.so's "cannot open shared object".
    run(w.path("rpath/prog") + "; test $? = 4");
    run(w.path("runpath/prog") + " 2>/dev/null; test $? = 127");

    auto archive =
        by_path(ktstr::elf_closure({include_file("/include-files/prog", w.root / "rpath/prog")}));
    REQUIRE(archive.contains(w.path("wlib/libw.so.1")));
    CHECK(archive.at(w.path("wlib/libw.so.1")).reason == "needed by " + w.path("lib/libv.so.1"));

    CHECK_THROWS_WITH(
        ktstr::elf_closure({include_file("/include-files/prog", w.root / "runpath/prog")}),
        ContainsSubstring("cannot find libw.so.1 needed by " + w.path("lib/libv.so.1")));
}

TEST_CASE("ld.so.conf directories are searched, with nested includes", "[elf]") {
    Workshop w;
    w.build_libs("conflib", "conflib");
    w.build_program("bin/prog", "conflib", "conflib", "", true);
    fs::create_directories(w.root / "etc/conf.d");
    write_file(w.root / "etc/ld.so.conf", "# top\ninclude conf.d/*.conf\n");
    write_file(w.root / "etc/conf.d/a.conf",
               "/nonexistent-dir\ninclude\t" + w.path("etc/more.conf") + "\n");
    write_file(w.root / "etc/more.conf",
               "hwcap 1 nosegneg\n  " + w.path("conflib") + "/  # trailing slash\n");

    ktstr::ClosureOptions options;
    options.ld_so_conf = w.root / "etc/ld.so.conf";
    auto archive = by_path(
        ktstr::elf_closure({include_file("/include-files/prog", w.root / "bin/prog")}, options));
    REQUIRE(archive.contains(w.path("conflib/libv.so.1")));
    CHECK(archive.at(w.path("conflib/libw.so.1")).reason ==
          "needed by " + w.path("conflib/libv.so.1"));

    options.ld_so_conf.clear();
    CHECK_THROWS_WITH(
        ktstr::elf_closure({include_file("/include-files/prog", w.root / "bin/prog")}, options),
        ContainsSubstring("cannot find libv.so.1 needed by /include-files/prog; searched: ") &&
            ContainsSubstring("/usr/lib/x86_64-linux-gnu"));
}

TEST_CASE("a DT_NEEDED with a slash is a path, used as it is", "[elf]") {
    Workshop w;
    fs::create_directories(w.root / "abs");
    write_file(w.root / "src/callw.c", "int w(void);\nint main(void) { return w(); }\n");
    // Without a soname, the linker records the library's path as the program gives it.
    run("cc -shared -fPIC -o " + w.path("abs/libnosoname.so") + " " + w.path("src/w.c"));
    run("cc -o " + w.path("prog") + " " + w.path("src/callw.c") + " " +
        w.path("abs/libnosoname.so"));

    auto archive =
        by_path(ktstr::elf_closure({include_file("/include-files/prog", w.root / "prog")}));
    REQUIRE(archive.contains(w.path("abs/libnosoname.so")));
    CHECK(archive.at(w.path("abs/libnosoname.so")).reason == "needed by /include-files/prog");

    fs::remove(w.root / "abs/libnosoname.so");
    CHECK_THROWS_WITH(ktstr::elf_closure({include_file("/include-files/prog", w.root / "prog")}),
                      ContainsSubstring("cannot find " + w.path("abs/libnosoname.so") +
                                        " needed by /include-files/prog; searched: " +
                                        w.path("abs/libnosoname.so")));
}

TEST_CASE("static binaries, scripts and data add nothing", "[elf]") {
    Workshop w;
    run("cc -static -o " + w.path("static") + " " + w.path("src/main.c") + " " + w.path("src/v.c") +
        " " + w.path("src/w.c"));
    write_file(w.root / "script.sh", "#!/bin/sh\necho hi\n");
    write_file(w.root / "empty", "");

    ArchiveEntry data;
    data.archive_path = "/ktstr/job.json";
    data.data = "{}";
    ArchiveEntry link;
    link.archive_path = "/include-files/fio-link";
    link.host_path = "/usr/bin/fio";
    link.kind = EntryKind::Symlink;
    link.link_target = "/usr/bin/fio";

    CHECK(ktstr::elf_closure({include_file("/include-files/static", w.root / "static"),
                              include_file("/include-files/script.sh", w.root / "script.sh"),
                              include_file("/include-files/empty", w.root / "empty"), data, link})
              .empty());
}

namespace {

// A little-endian ELF header and nothing else: enough for a loader to refuse the file.
std::string elf_header(unsigned char elf_class, uint16_t type, uint16_t machine) {
    std::string header(elf_class == 2 ? 64 : 52, '\0');
    header[0] = 0x7f;
    header[1] = 'E';
    header[2] = 'L';
    header[3] = 'F';
    header[4] = static_cast<char>(elf_class);
    header[5] = 1;  // little-endian
    header[6] = 1;  // EV_CURRENT
    header[16] = static_cast<char>(type);
    header[18] = static_cast<char>(machine & 0xff);
    header[19] = static_cast<char>(machine >> 8);
    header[20] = 1;                                               // e_version
    header[elf_class == 2 ? 52 : 40] = elf_class == 2 ? 64 : 52;  // e_ehsize
    return header;
}

}  // namespace

TEST_CASE("a foreign-architecture program is an error naming it", "[elf]") {
    Workshop w;
    constexpr uint16_t kExec = 2, kRel = 1, kAarch64 = 183, kI386 = 3, kBpf = 247;
    write_file(w.root / "arm-tool", elf_header(2, kExec, kAarch64));
    write_file(w.root / "i386-tool", elf_header(1, kExec, kI386));
    write_file(w.root / "sched.bpf.o", elf_header(2, kRel, kBpf));

    CHECK_THROWS_WITH(
        ktstr::elf_closure({include_file("/include-files/arm-tool", w.root / "arm-tool")}),
        ContainsSubstring("cannot pack /include-files/arm-tool") &&
            ContainsSubstring("aarch64 64-bit"));
    CHECK_THROWS_WITH(
        ktstr::elf_closure({include_file("/include-files/i386-tool", w.root / "i386-tool")}),
        ContainsSubstring("cannot pack /include-files/i386-tool") &&
            ContainsSubstring("i386 32-bit"));
    // A relocatable object (a BPF program) is data for the guest, not a program.
    CHECK(ktstr::elf_closure({include_file("/include-files/sched.bpf.o", w.root / "sched.bpf.o")})
              .empty());
}

TEST_CASE("an unreadable or missing input is an error with errno's text", "[elf]") {
    CHECK_THROWS_WITH(ktstr::elf_closure({include_file("/include-files/x", "/nonexistent/x")}),
                      ContainsSubstring("cannot open '/nonexistent/x'") &&
                          ContainsSubstring("No such file or directory"));
}
