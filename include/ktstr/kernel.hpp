// Kernel discovery: which kernel image a VM boots, its version, and whether it
// has sched_ext (from the kernel config beside it, when there is one).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace ktstr {

struct KernelInfo {
    std::filesystem::path image;                  // the bzImage (vmlinuz)
    std::string version;                          // from the image header; empty if unreadable
    std::optional<std::filesystem::path> config;  // CONFIG_* file beside it
    std::optional<bool> sched_ext;                // CONFIG_SCHED_CLASS_EXT=y; unset: unknown
    std::string found_by;  // "--kernel", "KTSTR_KERNEL", "cache", "/boot", ...
};

// ktstr's cache: $KTSTR_CACHE_DIR, else $XDG_CACHE_HOME/ktstr, else
// ~/.cache/ktstr. The set-up script puts kernels in kernels/ and the kernel's
// example sched_ext schedulers in scx/bin/.
std::filesystem::path cache_dir();
std::filesystem::path kernel_cache_dir();

// Reads an image's version string and looks for its config.
KernelInfo inspect_kernel(const std::filesystem::path& image, std::string found_by);

// Every kernel found, in the order they are preferred: the cache (its
// "default" link first), then /boot/vmlinuz-*, then /usr/lib/modules/*/vmlinuz.
std::vector<KernelInfo> find_kernels();

// The kernel to boot: `explicit_path` (a file, or a directory holding a
// vmlinuz), then $KTSTR_KERNEL, then the first of find_kernels(). Throws an
// Error that says how to get one when there is none.
KernelInfo choose_kernel(const std::string& explicit_path);

}  // namespace ktstr
