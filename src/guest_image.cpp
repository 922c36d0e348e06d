#include "ktstr/guest_image.hpp"

#include <cstdlib>

#include "ktstr/error.hpp"
#include "ktstr/initramfs.hpp"

namespace fs = std::filesystem;

namespace ktstr {
namespace {

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
    return entries;
}

int memory_for_initramfs(std::uintmax_t bytes) {
    constexpr int kFloorMb = 512;
    int archive_mb = static_cast<int>(bytes >> 20);
    int mb = kFloorMb + 3 * archive_mb;
    return (mb + 127) / 128 * 128;
}

}  // namespace ktstr
