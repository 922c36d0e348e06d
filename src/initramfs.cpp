// The initramfs writer: a newc cpio archive, deterministic and streamed.
//
// newc: each entry is a 110-byte ASCII header ("070701" and 13 fields of 8 hex
// digits), the NUL-terminated name padded to 4 bytes, then the data padded to
// 4 bytes; "TRAILER!!!" ends the archive.
#include "ktstr/initramfs.hpp"

#include <spawn.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "ktstr/error.hpp"
#include "ktstr/fd.hpp"
#include "ktstr/include_files.hpp"
#include "ktstr/temp_dir.hpp"

namespace ktstr {
namespace {

namespace fs = std::filesystem;

constexpr size_t kHeaderSize = 110;
constexpr size_t kFlushSize = 64 * 1024;
constexpr size_t kReadChunk = 1024 * 1024;
constexpr uint64_t kSendChunk = 1ULL << 30;
// The kernel's unpacker refuses a name (with its NUL) longer than PATH_MAX.
constexpr size_t kMaxNameSize = 4096;

// --- Layout: merged, checked, parents added, sorted ------------------------

bool bad_component(const std::string& path) {
    size_t start = 1;
    while (start <= path.size()) {
        size_t end = std::min(path.find('/', start), path.size());
        std::string_view part(path.data() + start, end - start);
        if (part.empty() || part == "." || part == "..") return true;
        start = end + 1;
    }
    return false;
}

void check_archive_path(const ArchiveEntry& e) {
    const std::string& p = e.archive_path;
    std::string why;
    if (p.empty() || p[0] != '/')
        why = "not an absolute path";
    else if (p == "/")
        why = "the root can only be a directory";
    else if (p.find('\0') != std::string::npos)
        why = "the name holds a NUL byte";
    else if (bad_component(p))
        why = "an empty, '.' or '..' component";
    else if (p.size() > kMaxNameSize)
        why = "the name is longer than the kernel's PATH_MAX";
    if (!why.empty())
        throw Error("cannot place " + quoted(p) + " (" + e.reason + ") in the initramfs: " + why);
}

ArchiveEntry entry_of(EntryKind kind, const std::string& path, uint32_t mode,
                      const std::string& reason) {
    ArchiveEntry entry;
    entry.archive_path = path;
    entry.kind = kind;
    entry.mode = mode;
    entry.reason = reason;
    return entry;
}

ArchiveEntry directory_entry(const std::string& path, uint32_t mode, const std::string& reason) {
    return entry_of(EntryKind::Directory, path, mode, reason);
}

ArchiveEntry file_entry(const std::string& path, const fs::path& host, uint32_t mode,
                        const std::string& reason) {
    ArchiveEntry entry = entry_of(EntryKind::File, path, mode, reason);
    entry.host_path = host;
    return entry;
}

ArchiveEntry link_entry(const std::string& path, const std::string& target,
                        const std::string& reason) {
    ArchiveEntry entry = entry_of(EntryKind::Symlink, path, 0777, reason);
    entry.link_target = target;
    return entry;
}

std::string parent_of(const std::string& path) {
    size_t slash = path.rfind('/');
    return slash == 0 || slash == std::string::npos ? "" : path.substr(0, slash);
}

void add_parent_directories(std::map<std::string, ArchiveEntry>& by_path) {
    std::vector<std::string> paths;
    for (const auto& [path, entry] : by_path) paths.push_back(path);

    for (const auto& path : paths) {
        for (auto parent = parent_of(path); !parent.empty(); parent = parent_of(parent)) {
            auto it = by_path.find(parent);
            if (it == by_path.end()) {
                by_path.emplace(parent, directory_entry(parent, 0755, "parent directory"));
                continue;
            }
            if (it->second.kind == EntryKind::Directory) break;
            throw Error("cannot place " + quoted(path) + " (" + by_path.at(path).reason +
                        ") in the initramfs: its parent " + quoted(parent) + " (" +
                        it->second.reason + ") is not a directory");
        }
    }
}

// Byte order of names puts every directory before what it holds.
ArchiveEntries plan_archive(const ArchiveEntries& entries) {
    ArchiveEntries merged;
    merge_entries(merged, entries);

    std::map<std::string, ArchiveEntry> by_path;
    for (auto& entry : merged) {
        if (entry.archive_path == "/" && entry.kind == EntryKind::Directory) continue;
        check_archive_path(entry);
        by_path.emplace(entry.archive_path, std::move(entry));
    }
    add_parent_directories(by_path);

    ArchiveEntries plan;
    plan.reserve(by_path.size());
    for (auto& [path, entry] : by_path) plan.push_back(std::move(entry));
    return plan;
}

// --- Copying host bytes -----------------------------------------------------

// sendfile keeps the bytes in the kernel; false when it cannot serve this pair of files.
bool send_body(int out, int in, off_t& pos, uint64_t size, const std::string& what) {
    while (static_cast<uint64_t>(pos) < size) {
        auto chunk = static_cast<size_t>(std::min(size - pos, kSendChunk));
        ssize_t n = ::sendfile(out, in, &pos, chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EINVAL || errno == ENOSYS)) return false;
        if (n < 0) throw_errno(what);
        if (n == 0) break;
    }
    return true;
}

void read_body(int out, int in, off_t& pos, uint64_t size, const std::string& what) {
    std::vector<char> buffer(kReadChunk);
    while (static_cast<uint64_t>(pos) < size) {
        auto chunk = static_cast<size_t>(std::min<uint64_t>(size - pos, buffer.size()));
        ssize_t n = ::pread(in, buffer.data(), chunk, pos);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw_errno(what);
        if (n == 0) break;
        write_all(out, buffer.data(), static_cast<size_t>(n), what);
        pos += n;
    }
}

bool has_byte_at(int fd, uint64_t pos, const std::string& what) {
    char byte;
    for (;;) {
        ssize_t n = ::pread(fd, &byte, 1, static_cast<off_t>(pos));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw_errno(what);
        return n > 0;
    }
}

Fd open_source(const ArchiveEntry& e) {
    // O_NONBLOCK: a fifo at host_path must not hang the writer before fstat refuses it.
    int fd = ::open(e.host_path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        throw_errno("cannot open " + quoted(e.host_path.native()) + " for " + e.archive_path);
    return Fd(fd);
}

struct stat stat_source(const Fd& fd, const ArchiveEntry& e) {
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) throw_errno("cannot stat " + quoted(e.host_path.native()));
    if (!S_ISREG(st.st_mode))
        throw Error("cannot pack " + quoted(e.host_path.native()) + " as " + e.archive_path +
                    ": not a regular file");
    return st;
}

void check_size(uint64_t size, const std::string& object) {
    if (size > kMaxArchiveFileSize)
        throw Error("cannot pack " + object + ": it is " + std::to_string(size) +
                    " bytes, and the initramfs (newc cpio) holds files below 4 GiB");
}

// --- The archive ------------------------------------------------------------

class CpioWriter {
  public:
    CpioWriter(int fd, std::string what) : fd_(fd), what_(std::move(what)) {}

    void add(const ArchiveEntry& e) {
        switch (e.kind) {
            case EntryKind::Directory:
                add_directory(e);
                break;
            case EntryKind::Symlink:
                add_symlink(e);
                break;
            case EntryKind::File:
                e.host_path.empty() ? add_data_file(e) : add_host_file(e);
                break;
        }
    }

    void finish() {
        put_header("TRAILER!!!", 0, 1, 0, 0);
        flush();
    }

  private:
    static std::string name_of(const ArchiveEntry& e) { return e.archive_path.substr(1); }

    void add_directory(const ArchiveEntry& e) {
        put_header(name_of(e), S_IFDIR | permission_bits(e), 2, 0, next_ino_++);
    }

    void add_symlink(const ArchiveEntry& e) {
        if (e.link_target.empty())
            throw Error("cannot place link " + quoted(e.archive_path) + " (" + e.reason +
                        ") in the initramfs: it has no target");
        put_header(name_of(e), S_IFLNK | 0777, 1, e.link_target.size(), next_ino_++);
        put(e.link_target);
        pad();
    }

    void add_data_file(const ArchiveEntry& e) {
        check_size(e.data.size(), quoted(e.archive_path));
        put_header(name_of(e), S_IFREG | permission_bits(e), 1, e.data.size(), next_ino_++);
        put(e.data);
        pad();
    }

    void add_host_file(const ArchiveEntry& e) {
        Fd source = open_source(e);
        struct stat st = stat_source(source, e);
        auto size = static_cast<uint64_t>(st.st_size);
        check_size(size, quoted(e.host_path.native()) + " as " + e.archive_path);

        uint32_t perms = e.mode != 0 ? e.mode & 07777 : st.st_mode & 07777;
        put_header(name_of(e), S_IFREG | perms, 1, size, next_ino_++);
        copy_body(source.get(), size, e);
        pad();
    }

    // The header already promised `size` bytes: a file that changed size since the
    // fstat would make a corrupt archive, so it is an error instead.
    void copy_body(int source, uint64_t size, const ArchiveEntry& e) {
        flush();
        std::string what = "cannot copy " + quoted(e.host_path.native()) + " into " + what_;
        off_t pos = 0;
        if (!send_body(fd_, source, pos, size, what)) read_body(fd_, source, pos, size, what);

        std::string change = static_cast<uint64_t>(pos) < size ? "shrank"
                             : has_byte_at(source, size, what) ? "grew"
                                                               : "";
        if (!change.empty())
            throw Error(what + ": it " + change + " from " + std::to_string(size) +
                        " bytes while being copied");
        offset_ += size;
    }

    void put_header(const std::string& name, uint32_t mode, uint32_t nlink, uint64_t size,
                    uint32_t ino) {
        char header[kHeaderSize + 1];
        std::snprintf(header, sizeof header,
                      "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X", ino, mode, 0u,
                      0u, nlink, 0u, static_cast<unsigned>(size), 0u, 0u, 0u, 0u,
                      static_cast<unsigned>(name.size() + 1), 0u);
        put(std::string_view(header, kHeaderSize));
        put(std::string_view(name.c_str(), name.size() + 1));
        pad();
    }

    void put(std::string_view bytes) {
        pending_.append(bytes);
        offset_ += bytes.size();
        if (pending_.size() >= kFlushSize) flush();
    }

    void pad() { put(std::string_view("\0\0\0", (4 - offset_ % 4) % 4)); }

    void flush() {
        write_all(fd_, pending_.data(), pending_.size(), what_);
        pending_.clear();
    }

    int fd_;
    std::string what_;
    std::string pending_;
    uint64_t offset_ = 0;
    uint32_t next_ino_ = 1;
};

void write_archive(const ArchiveEntries& entries, int fd, const std::string& what) {
    CpioWriter writer(fd, what);
    for (const auto& entry : plan_archive(entries)) writer.add(entry);
    writer.finish();
}

// The directory a PartFile for `out` goes in (see temp_dir.hpp): renamed into place by commit()
// and removed otherwise, so a failed or killed write never leaves a partial archive at `out`.
fs::path directory_of(const fs::path& out) {
    if (!out.has_filename())
        throw Error("cannot write initramfs " + quoted(out.native()) + ": not a file name");
    return out.has_parent_path() ? out.parent_path() : fs::path(".");
}

// --- The base layer ---------------------------------------------------------

void require_regular_file(const fs::path& path, const std::string& what) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) throw_errno("cannot find " + what + " " + quoted(path));
    if (!S_ISREG(st.st_mode))
        throw Error("cannot use " + quoted(path.native()) + " as " + what + ": not a regular file");
}

class SpawnActions {
  public:
    SpawnActions() { ::posix_spawn_file_actions_init(&actions_); }
    ~SpawnActions() { ::posix_spawn_file_actions_destroy(&actions_); }
    SpawnActions(const SpawnActions&) = delete;
    SpawnActions& operator=(const SpawnActions&) = delete;
    const posix_spawn_file_actions_t* get() const noexcept { return &actions_; }
    int dup_to(int fd, int target) {
        return ::posix_spawn_file_actions_adddup2(&actions_, fd, target);
    }

  private:
    posix_spawn_file_actions_t actions_;
};

// Reads to EOF; a read error is kept in `error` so the child is still reaped.
std::string read_to_end(int fd, int& error) {
    std::string text;
    char chunk[4096];
    for (;;) {
        ssize_t n = ::read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) error = errno;
        if (n <= 0) return text;
        text.append(chunk, static_cast<size_t>(n));
    }
}

int wait_for(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) return -1;
    }
    return status;
}

std::string busybox_listing(const fs::path& busybox) {
    std::string program = busybox.native();
    std::string flag = "--list-full";
    std::string command = quoted(program + " " + flag);
    Pipe out = Pipe::make();
    SpawnActions actions;
    if (int rc = actions.dup_to(out.write.get(), STDOUT_FILENO))
        throw SysError("cannot run " + command, rc);

    char* argv[] = {program.data(), flag.data(), nullptr};
    pid_t pid = 0;
    if (int rc = ::posix_spawn(&pid, program.c_str(), actions.get(), nullptr, argv, environ))
        throw SysError("cannot run " + command, rc);
    out.write.reset();

    int read_error = 0;
    std::string listing = read_to_end(out.read.get(), read_error);
    int status = wait_for(pid);
    if (read_error != 0) throw SysError("cannot read the output of " + command, read_error);
    if (status < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        throw Error("cannot list busybox applets: " + command + " failed (wait status " +
                    std::to_string(status) + ")");
    return listing;
}

// Applet names, without busybox itself and without the ones that would stand in for our
// PID 1 (init, linuxrc): nothing may start busybox's init by name in the guest.
std::vector<std::string> busybox_applets(const fs::path& busybox) {
    static const std::set<std::string> kLeftOut = {"busybox", "init", "linuxrc"};
    std::vector<std::string> applets;
    std::string listing = busybox_listing(busybox);
    size_t start = 0;
    while (start < listing.size()) {
        size_t end = std::min(listing.find('\n', start), listing.size());
        std::string name = listing.substr(start, end - start);
        start = end + 1;
        name.erase(0, name.rfind('/') + 1);  // npos + 1 == 0: a bare name stays whole
        if (!name.empty() && !kLeftOut.count(name)) applets.push_back(name);
    }

    if (applets.empty())
        throw Error("cannot list busybox applets: " + quoted(busybox.native()) +
                    " --list-full printed none (is it busybox?)");
    return applets;
}

// --- Layout listing ---------------------------------------------------------

struct LayoutRow {
    std::string path, source, size, reason;
};

std::string host_file_size(const fs::path& path) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return "missing";
    return std::to_string(st.st_size);
}

// A name with a newline or another control byte would break the listing's lines and
// columns: such bytes show as \n, \t or \xHH (and a backslash as \\).
std::string listable(const std::string& name) {
    std::string out;
    for (unsigned char c : name) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '\n')
            out += "\\n";
        else if (c == '\t')
            out += "\\t";
        else if (c < 0x20 || c == 0x7f)
            out += fmt::format("\\x{:02x}", c);
        else
            out += char(c);
    }
    return out;
}

LayoutRow layout_row(const ArchiveEntry& e) {
    LayoutRow row{listable(e.archive_path), "(generated)", "-", e.reason};
    switch (e.kind) {
        case EntryKind::Directory:
            if (!e.host_path.empty()) row.source = listable(e.host_path.native());
            break;
        case EntryKind::Symlink:
            row.source = "-> " + listable(e.link_target);
            break;
        case EntryKind::File:
            if (e.host_path.empty()) {
                row.size = std::to_string(e.data.size());
            } else {
                row.source = listable(e.host_path.native());
                row.size = host_file_size(e.host_path);
            }
            break;
    }
    return row;
}

}  // namespace

uint32_t permission_bits(const ArchiveEntry& entry) {
    if (entry.kind == EntryKind::Symlink) return 0777;
    if (entry.mode != 0) return entry.mode & 07777;
    if (entry.host_path.empty()) return entry.kind == EntryKind::Directory ? 0755 : 0644;

    struct stat st;
    if (::stat(entry.host_path.c_str(), &st) != 0)
        throw_errno("cannot stat " + quoted(entry.host_path.native()) + " for " +
                    entry.archive_path);
    return st.st_mode & 07777;
}

void write_cpio(const ArchiveEntries& entries, int fd) {
    write_archive(entries, fd, "the initramfs");
}

void write_initramfs(const ArchiveEntries& entries, const std::filesystem::path& out) {
    sweep_dead_writers(directory_of(out));  // what a killed `ktstr initramfs -o` left there
    PartFile temp(directory_of(out), out.filename());
    write_archive(entries, temp.fd(), "initramfs " + quoted(out.native()));
    temp.commit(out);
}

void compress_initramfs(const fs::path& archive, const fs::path& out, Compression c) {
    Fd in = Fd::open(archive.native(), O_RDONLY);
    PartFile temp(directory_of(out), out.filename());
    compress_stream(in.get(), temp.fd(), c, "initramfs " + quoted(out.native()));
    temp.commit(out);
}

ArchiveEntries base_layer(const std::filesystem::path& init_binary,
                          const std::filesystem::path& busybox) {
    require_regular_file(init_binary, "guest init");
    require_regular_file(busybox, "busybox");

    ArchiveEntries entries{file_entry("/init", init_binary, 0755, "guest init"),
                           file_entry("/bin/busybox", busybox, 0755, "busybox")};
    for (const char* dir : {"/dev", "/include-files", "/ktstr", "/proc", "/run", "/sys"})
        entries.push_back(directory_entry(dir, 0755, "base"));
    entries.push_back(directory_entry("/tmp", 01777, "base"));

    // One link per applet would be about 400 archive entries, 0.13-0.18 s of the kernel's
    // unpacking under TCG. Only the two names programs use by path get one; busybox's shell
    // runs every applet by name without a link, and PayloadRun reads the list.
    entries.push_back(link_entry("/bin/sh", "/bin/busybox", "busybox's shell"));
    entries.push_back(link_entry("/usr/bin/env", "/bin/busybox", "busybox's env, for #!"));
    std::string list;
    for (const auto& applet : busybox_applets(busybox)) list += applet + "\n";
    ArchiveEntry listing = file_entry(kBusyboxAppletList, {}, 0644, "busybox's applets");
    listing.data = std::move(list);
    entries.push_back(std::move(listing));
    return entries;
}

std::string format_layout(const ArchiveEntries& entries) {
    std::vector<LayoutRow> rows;
    size_t path_width = 0, source_width = 0, size_width = 0;
    for (const auto& entry : plan_archive(entries)) {
        rows.push_back(layout_row(entry));
        path_width = std::max(path_width, rows.back().path.size());
        source_width = std::max(source_width, rows.back().source.size());
        size_width = std::max(size_width, rows.back().size.size());
    }

    // Widths count bytes: names need not be UTF-8.
    std::string text;
    for (const auto& r : rows) {
        std::string line = r.path + std::string(path_width - r.path.size() + 2, ' ') + r.source +
                           std::string(source_width - r.source.size() + 2, ' ') +
                           std::string(size_width - r.size.size(), ' ') + r.size + "  " + r.reason;
        text += line.substr(0, line.find_last_not_of(' ') + 1) + '\n';
    }
    return text;
}

}  // namespace ktstr
