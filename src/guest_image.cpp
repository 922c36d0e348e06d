#include "ktstr/guest_image.hpp"

#include <algorithm>
#include <cstdlib>
#include <iterator>
#include <map>

#include "ktstr/error.hpp"
#include "ktstr/initramfs.hpp"
#include "ktstr/log.hpp"

namespace fs = std::filesystem;

namespace ktstr {
namespace {

// busybox's shell runs its own applet for a name it knows, before it looks at PATH: an
// include file of that name is reached by its path only. Says so once per such file.
void warn_of_shadowed_files(const ArchiveEntries& entries) {
    std::string_view applets;
    for (const auto& e : entries)
        if (e.archive_path == kBusyboxAppletList) applets = e.data;
    const std::string root = "/include-files/";
    for (const auto& e : entries) {
        if (e.kind != EntryKind::File || e.archive_path.rfind(root, 0) != 0) continue;
        auto name = fs::path(e.archive_path).filename().string();
        if (!is_listed(applets, name) || (permission_bits(e) & 0111) == 0) continue;
        log(LogLevel::Warn,
            "{} has the name of a busybox applet: in the guest's shell, `{}` runs busybox's; "
            "name the file by its path ({}) there (PayloadRun finds the file on PATH)",
            e.archive_path, name, e.archive_path);
    }
}

fs::path running_executable_dir() {
    std::error_code ec;
    auto exe = fs::read_symlink("/proc/self/exe", ec);
    return ec ? fs::path(".") : exe.parent_path();
}

}  // namespace

fs::path find_guest_init() {
    if (const char* p = std::getenv("KTSTR_INIT"); p && *p) {
        if (!fs::exists(p)) throw Error("cannot find the guest init at $KTSTR_INIT " + quoted(p));
        return p;
    }
    auto exe_dir = running_executable_dir();
    std::vector<fs::path> places = {exe_dir / "ktstr-init", exe_dir / "../libexec/ktstr/ktstr-init",
                                    fs::path(KTSTR_BUILD_INIT), fs::path(KTSTR_INSTALL_INIT)};
    std::string tried;
    for (const auto& p : places) {
        if (fs::exists(p)) return p;
        tried += " " + p.string();
    }
    throw Error("cannot find the guest init ktstr-init (tried" + tried + "); set KTSTR_INIT");
}

fs::path find_busybox() {
    const char* p = std::getenv("KTSTR_BUSYBOX");
    fs::path bb = p && *p ? p : "/bin/busybox";
    if (!fs::exists(bb))
        throw Error("cannot find busybox at " + quoted(bb.string()) +
                    "; install busybox-static or set KTSTR_BUSYBOX");
    return bb;
}

ArchiveEntries guest_layout(const std::vector<IncludeSpec>& specs, const KernelInfo& kernel,
                            const ClosureOptions& closure) {
    auto entries = base_layer(find_guest_init(), find_busybox());
    if (kernel.config && !kernel.version.empty()) {
        ArchiveEntry config;
        config.archive_path = "/boot/config-" + kernel.version;
        config.host_path = *kernel.config;
        config.mode = 0644;
        config.reason = "the kernel's config";
        merge_entries(entries, {config});
    }
    merge_entries(entries, resolve_include_files(specs));
    add_elf_closure(entries, closure);
    warn_of_shadowed_files(entries);
    return entries;
}

std::string guest_path(const ArchiveEntries& entries) {
    const fs::path root = "/include-files";
    std::map<std::string, const ArchiveEntry*> by_path;
    for (const auto& e : entries) by_path[e.archive_path] = &e;
    auto executable = [&](const ArchiveEntry* e) {
        for (int links = 0; e && links < 40; ++links) {  // 40: the kernel's own bound
            if (e->kind == EntryKind::File) return (permission_bits(*e) & 0111) != 0;
            if (e->kind != EntryKind::Symlink) return false;
            auto target = fs::path(e->archive_path).parent_path() / e->link_target;
            auto it = by_path.find(target.lexically_normal().string());
            e = it == by_path.end() ? nullptr : it->second;
        }
        return false;
    };

    std::vector<fs::path> dirs;
    for (const auto& e : entries) {
        const fs::path p = fs::path(e.archive_path).lexically_normal();
        const auto dir = p.parent_path();
        auto [end, _] = std::mismatch(root.begin(), root.end(), dir.begin(), dir.end());
        if (end != root.end() || dir == root || !executable(&e)) continue;
        dirs.push_back(dir);
    }
    auto depth = [](const fs::path& p) { return std::distance(p.begin(), p.end()); };
    std::sort(dirs.begin(), dirs.end(), [&](const fs::path& a, const fs::path& b) {
        return depth(a) != depth(b) ? depth(a) > depth(b) : a < b;
    });
    dirs.erase(std::unique(dirs.begin(), dirs.end()), dirs.end());

    std::string path;
    for (const auto& dir : dirs) path += dir.string() + ":";
    return path + root.string() + ":/bin:/sbin:/usr/bin:/usr/sbin";
}

int memory_for_initramfs(std::uintmax_t bytes) {
    constexpr int kFloorMb = 512;
    int archive_mb = static_cast<int>(bytes >> 20);
    int mb = kFloorMb + 3 * archive_mb;
    return (mb + 127) / 128 * 128;
}

}  // namespace ktstr
