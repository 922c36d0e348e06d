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
    std::string why;                           // one line for the debug log
};

// The ELF vmlinux for `bzimage`, from `cache` (created on first use) or unpacked now.
// Never throws for a kernel that cannot boot this way: `why` says what was wrong. Set
// KTSTR_KERNEL_ENTRY=bzimage to always boot the bzImage as is.
PvhImage pvh_image(const std::filesystem::path& bzimage, const std::filesystem::path& cache);

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
