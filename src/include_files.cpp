// The include-file resolver: specs to archive entries under /include-files, and
// the merge rule every stage uses to combine entry lists.
#include "ktstr/include_files.hpp"

#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <system_error>
#include <unordered_map>
#include <vector>

#include "ktstr/error.hpp"
#include "ktstr/initramfs.hpp"
#include "ktstr/log.hpp"
#include "ktstr/search_path.hpp"

namespace ktstr {
namespace {

namespace fs = std::filesystem;

const std::string kIncludeDir = "/include-files";

// A host file's identity: two spellings of one file are one file.
struct FileId {
    dev_t dev = 0;
    ino_t ino = 0;
    bool operator==(const FileId&) const = default;
};

struct Resolved {
    ArchiveEntry entry;
    FileId id;
};

// Who placed an archive path, to tell a repeat from a clash.
struct Claim {
    Resolved resolved;
    const IncludeSpec* spec;
};

std::string describe(const IncludeSpec& spec) {
    return quoted(spec.spec) + " (from " + spec.source + ")";
}

std::string reason_for(const IncludeSpec& spec) {
    return "include file " + quoted(spec.spec) + " from " + spec.source;
}

bool is_path_spec(const std::string& spec) {
    return spec.find('/') != std::string::npos || spec == "." || spec == "..";
}

std::string join(const std::vector<std::string>& parts, const std::string& separator) {
    std::string out;
    for (const auto& part : parts) out += (out.empty() ? "" : separator) + part;
    return out;
}

std::vector<std::string> search_dirs(const ResolveOptions& options) {
    std::string path = options.search_path;
    if (path.empty()) {
        const char* env = std::getenv("PATH");
        if (env) path = env;
    }

    return split_search_path(path);
}

bool is_executable_file(const fs::path& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111) != 0;
}

fs::path find_on_path(const IncludeSpec& spec, const ResolveOptions& options) {
    auto dirs = search_dirs(options);
    for (const auto& dir : dirs) {
        fs::path candidate = fs::path(dir) / spec.spec;
        if (is_executable_file(candidate)) return candidate;
    }

    std::string searched = dirs.empty() ? "PATH is empty" : "searched " + join(dirs, ", ");
    std::error_code ec;
    std::string here =
        fs::exists(fs::symlink_status(spec.spec, ec))
            ? "; to pack the " +
                  std::string(fs::is_directory(spec.spec, ec) ? "directory" : "file") +
                  " of that name here, write ./" + spec.spec
            : "";
    throw Error("cannot find include file " + describe(spec) +
                ": no executable file of that name on PATH (" + searched + ")" + here);
}

// The kernel's own filesystems: their files say size 0 and make their content when read, so
// packed as they stand they would arrive empty.
const char* kernel_filesystem(const fs::path& host) {
    struct statfs fs {};
    if (::statfs(host.c_str(), &fs) != 0) return nullptr;
    switch (static_cast<unsigned long>(fs.f_type)) {
        case PROC_SUPER_MAGIC:
            return "proc";
        case SYSFS_MAGIC:
            return "sysfs";
        case DEBUGFS_MAGIC:
            return "debugfs";
        case TRACEFS_MAGIC:
            return "tracefs";
        case CGROUP2_SUPER_MAGIC:
            return "cgroup2";
    }
    return nullptr;
}

struct stat stat_spec(const fs::path& host, const IncludeSpec& spec) {
    struct stat st;
    if (::stat(host.c_str(), &st) != 0) throw_errno("cannot find include file " + describe(spec));
    if (const char* kind = kernel_filesystem(host))
        throw Error("cannot include " + describe(spec) + ": it is on the kernel's " + kind +
                    " filesystem, whose files have no size until read and would arrive empty; "
                    "copy what you need into ordinary files first");
    return st;
}

struct stat lstat_in_walk(const fs::path& host, const IncludeSpec& spec) {
    struct stat st;
    if (::lstat(host.c_str(), &st) != 0)
        throw_errno("cannot read " + quoted(host.native()) + " (in " + describe(spec) + ")");
    return st;
}

fs::path real_path(const fs::path& host, const IncludeSpec& spec) {
    std::error_code ec;
    fs::path real = fs::canonical(host, ec);
    if (ec) throw SysError("cannot find include file " + describe(spec), ec.value());
    return real;
}

// The name under /include-files: the spec's own last component ("dir/" and a
// symlink keep theirs); "." and ".." take the real directory's name.
std::string root_name(const fs::path& host, const fs::path& real, const IncludeSpec& spec) {
    std::string spelled = host.native();
    while (spelled.size() > 1 && spelled.back() == '/') spelled.pop_back();
    std::string name = fs::path(spelled).filename().native();
    if (name.empty() || name == "." || name == "..") name = real.filename().native();
    if (name.empty())
        throw Error("cannot include " + describe(spec) + ": '/' has no name to go under " +
                    kIncludeDir);
    return name;
}

Resolved resolved(EntryKind kind, const fs::path& host, const std::string& archive,
                  const struct stat& st, const IncludeSpec& spec) {
    Resolved r;
    r.entry.archive_path = archive;
    r.entry.host_path = host;
    r.entry.kind = kind;
    r.entry.mode = static_cast<uint32_t>(st.st_mode & 07777);
    r.entry.reason = reason_for(spec);
    r.id = FileId{st.st_dev, st.st_ino};
    return r;
}

Resolved file_entry(const fs::path& host, const std::string& archive, const struct stat& st,
                    const IncludeSpec& spec) {
    auto size = static_cast<uint64_t>(st.st_size);
    if (size > kMaxArchiveFileSize)
        throw Error("cannot include " + quoted(host.native()) + " (" + reason_for(spec) +
                    "): it is " + std::to_string(size) +
                    " bytes, and the initramfs (newc cpio) holds files below 4 GiB");
    return resolved(EntryKind::File, host, archive, st, spec);
}

Resolved directory_entry(const fs::path& host, const std::string& archive, const struct stat& st,
                         const IncludeSpec& spec) {
    return resolved(EntryKind::Directory, host, archive, st, spec);
}

Resolved symlink_entry(const fs::path& host, const std::string& archive, const struct stat& st,
                       const IncludeSpec& spec) {
    std::error_code ec;
    fs::path target = fs::read_symlink(host, ec);
    if (ec)
        throw SysError("cannot read link " + quoted(host.native()) + " (in " + describe(spec) + ")",
                       ec.value());
    Resolved link = resolved(EntryKind::Symlink, host, archive, st, spec);
    link.entry.link_target = target.native();
    link.entry.mode = 0777;
    return link;
}

std::vector<fs::path> sorted_children(const fs::path& dir, const IncludeSpec& spec) {
    std::error_code ec;
    std::vector<fs::path> names;
    fs::directory_iterator it(dir, ec);
    for (; !ec && it != fs::directory_iterator(); it.increment(ec))
        names.push_back(it->path().filename());
    if (ec)
        throw SysError(
            "cannot read directory " + quoted(dir.native()) + " (in " + describe(spec) + ")",
            ec.value());

    std::sort(names.begin(), names.end(),
              [](const fs::path& a, const fs::path& b) { return a.native() < b.native(); });
    return names;
}

const char* special_kind(mode_t mode) {
    if (S_ISFIFO(mode)) return "a fifo";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    return "a special file";
}

void walk_directory(const fs::path& dir, const std::string& archive_dir, const IncludeSpec& spec,
                    std::vector<Resolved>& out) {
    for (const auto& name : sorted_children(dir, spec)) {
        fs::path host = dir / name;
        std::string archive = archive_dir + "/" + name.native();
        struct stat st = lstat_in_walk(host, spec);

        if (S_ISLNK(st.st_mode)) {
            out.push_back(symlink_entry(host, archive, st, spec));
        } else if (S_ISREG(st.st_mode)) {
            out.push_back(file_entry(host, archive, st, spec));
        } else if (S_ISDIR(st.st_mode)) {
            out.push_back(directory_entry(host, archive, st, spec));
            walk_directory(host, archive, spec, out);
        } else {
            // A host's fifo, socket or device node means nothing in the guest.
            log(LogLevel::Warn, "not packing {}, {}: found walking {}", quoted(host.native()),
                special_kind(st.st_mode), describe(spec));
        }
    }
}

std::vector<Resolved> resolve_spec(const IncludeSpec& spec, const ResolveOptions& options) {
    if (spec.spec.empty())
        throw Error("cannot find include file " + describe(spec) + ": empty name");
    fs::path host = is_path_spec(spec.spec) ? fs::path(spec.spec) : find_on_path(spec, options);
    struct stat st = stat_spec(host, spec);
    fs::path real = real_path(host, spec);
    std::string archive = kIncludeDir + "/" + root_name(host, real, spec);

    std::vector<Resolved> out;
    if (S_ISREG(st.st_mode)) {
        out.push_back(file_entry(real, archive, st, spec));
    } else if (S_ISDIR(st.st_mode)) {
        out.push_back(directory_entry(real, archive, st, spec));
        walk_directory(real, archive, spec, out);
    } else {
        throw Error("cannot include " + describe(spec) + ": not a regular file or a directory");
    }
    return out;
}

void claim(std::map<std::string, Claim>& claims, Resolved resolved, const IncludeSpec& spec) {
    std::string path = resolved.entry.archive_path;
    auto it = claims.find(path);
    if (it == claims.end()) {
        claims.emplace(path, Claim{std::move(resolved), &spec});
        return;
    }

    const Claim& first = it->second;
    if (first.resolved.id == resolved.id) return;
    throw Error("cannot include both " + describe(*first.spec) + " and " + describe(spec) +
                ": both want " + path + ", from different files " +
                quoted(first.resolved.entry.host_path.native()) + " and " +
                quoted(resolved.entry.host_path.native()));
}

// For merge errors: where an entry's content comes from, and why it is there.
std::string origin_of(const ArchiveEntry& e) {
    std::string origin;
    switch (e.kind) {
        case EntryKind::Directory:
            origin = "a directory";
            break;
        case EntryKind::Symlink:
            origin = "a link to " + quoted(e.link_target);
            break;
        case EntryKind::File:
            origin = e.host_path.empty() ? "generated data" : quoted(e.host_path.native());
            break;
    }
    return e.reason.empty() ? origin : origin + " (" + e.reason + ")";
}

bool same_mode(const ArchiveEntry& a, const ArchiveEntry& b) {
    return a.mode == b.mode || permission_bits(a) == permission_bits(b);
}

bool same_content(const ArchiveEntry& a, const ArchiveEntry& b) {
    if (a.host_path.empty() || b.host_path.empty())
        return a.host_path.empty() && b.host_path.empty() && a.data == b.data;
    std::error_code ec;
    return a.host_path == b.host_path || fs::equivalent(a.host_path, b.host_path, ec);
}

bool same_entry(const ArchiveEntry& a, const ArchiveEntry& b) {
    if (a.kind != b.kind) return false;
    switch (a.kind) {
        case EntryKind::Directory:
            return same_mode(a, b);
        case EntryKind::Symlink:
            return a.link_target == b.link_target;
        case EntryKind::File:
            return same_content(a, b) && same_mode(a, b);
    }
    return false;
}

}  // namespace

ArchiveEntries resolve_include_files(const std::vector<IncludeSpec>& specs,
                                     const ResolveOptions& options) {
    std::map<std::string, Claim> claims;
    for (const auto& spec : specs) {
        for (auto& resolved : resolve_spec(spec, options)) claim(claims, std::move(resolved), spec);
    }

    ArchiveEntries entries;
    entries.reserve(claims.size());
    for (auto& [path, c] : claims) entries.push_back(std::move(c.resolved.entry));
    return entries;
}

void merge_entries(ArchiveEntries& into, const ArchiveEntries& more) {
    std::unordered_map<std::string, size_t> index;
    for (size_t i = 0; i < into.size(); ++i) index.try_emplace(into[i].archive_path, i);

    for (const auto& entry : more) {
        auto [it, added] = index.try_emplace(entry.archive_path, into.size());
        if (added) {
            into.push_back(entry);
            continue;
        }
        const ArchiveEntry& present = into[it->second];
        if (same_entry(present, entry)) continue;
        throw Error("cannot add " + quoted(entry.archive_path) + " from " + origin_of(entry) +
                    ": the initramfs already has it from " + origin_of(present));
    }
}

}  // namespace ktstr
