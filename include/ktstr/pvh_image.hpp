// PVH boot: QEMU can start an uncompressed ELF vmlinux at its PVH entry point (the
// XEN_ELFNOTE_PHYS32_ENTRY note a CONFIG_PVH=y kernel carries) instead of running the
// bzImage's decompressor. Under TCG that decompressor is emulated: on the 7.3 kernel it is
// about 3 s of an 11 s boot (bench/boot_config.sh, row "kernel entry"). The ELF is unpacked
// from the bzImage's payload once and cached; a kernel without the note, or with a payload
// compressed in a format ktstr does not read, boots as a bzImage.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace ktstr {

struct PvhImage {
    std::optional<std::filesystem::path> elf;  // what to pass to -kernel; unset: the bzImage
    uint64_t load_end = 0;                     // the physical address the ELF's segments end at
    std::string why;                           // one line for the log
    bool warn = false;  // the cache could not be used: worth a warning, not only a debug line
};

// What to boot for `kernel`: an ELF vmlinux with the PVH entry as it is; for a bzImage, the
// ELF from its payload, from `cache` (written on first use). A kernel without the entry, a
// payload format ktstr does not read, or a cache that cannot be written gives the bzImage
// (`why` says which). Throws, naming the file, for one that cannot boot at all: empty,
// truncated, damaged, or neither a bzImage nor a bootable ELF. KTSTR_KERNEL_ENTRY=bzimage
// always boots the bzImage, =pvh fails when PVH cannot be used, =auto (or unset) chooses.
PvhImage pvh_image(const std::filesystem::path& kernel, const std::filesystem::path& cache);

// Whether QEMU can place an initrd of `initrd_bytes` above the ELF in `memory_bytes` of guest
// memory. It cannot when the initrd is too big for the memory: the initrd would overwrite the
// kernel, which then hangs before printing anything; the bzImage's decompressor moves itself
// out of the initrd's way, and the kernel then reports that it ran out of memory.
bool pvh_fits(const PvhImage& image, uint64_t memory_bytes, uint64_t initrd_bytes);

// cache_dir()/pvh
std::filesystem::path pvh_cache_dir();

// Removes every cached ELF and remembered refusal; returns the bytes freed.
std::uintmax_t clean_pvh_cache(const std::filesystem::path& cache);

}  // namespace ktstr
