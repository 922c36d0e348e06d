#include "ktstr/guest_image.hpp"

#include <cstdlib>
#include <set>
#include <sstream>

#include "ktstr/error.hpp"
#include "ktstr/initramfs.hpp"
#include "ktstr/log.hpp"

namespace fs = std::filesystem;

namespace ktstr {
namespace {

// busybox's shell runs its own applet for a name it knows, before it looks at PATH: an
// include file of that name is reached by its path only. Says so once per such file.
void warn_of_shadowed_files(const ArchiveEntries& entries) {
    std::set<std::string> applets;
    for (const auto& e : entries) {
        if (e.archive_path != kBusyboxAppletList) continue;
        std::istringstream list(e.data);
        for (std::string name; std::getline(list, name);) applets.insert(name);
    }
    const std::string root = "/include-files/";
    for (const auto& e : entries) {
        if (e.kind != EntryKind::File || e.archive_path.rfind(root, 0) != 0) continue;
        auto name = fs::path(e.archive_path).filename().string();
        if (!applets.count(name) || (permission_bits(e) & 0111) == 0) continue;
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

int memory_for_initramfs(std::uintmax_t bytes) {
    constexpr int kFloorMb = 512;
    int archive_mb = static_cast<int>(bytes >> 20);
    int mb = kFloorMb + 3 * archive_mb;
    return (mb + 127) / 128 * 128;
}

}  // namespace ktstr
