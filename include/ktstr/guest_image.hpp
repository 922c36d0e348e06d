// What every guest gets: the init, busybox, the include files and their ELF
// closure, put together as one list of archive entries.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "ktstr/archive_entry.hpp"
#include "ktstr/elf_closure.hpp"
#include "ktstr/include_files.hpp"
#include "ktstr/kernel.hpp"

namespace ktstr {

// The guest init binary: $KTSTR_INIT, then ktstr-init beside the running
// executable or in its ../libexec/ktstr, then the build tree and install
// prefix this library came from.
std::filesystem::path find_guest_init();

// $KTSTR_BUSYBOX, else /bin/busybox (Debian's busybox-static).
std::filesystem::path find_busybox();

// The base layer, the include files and the closure of all of them, plus the
// kernel's config at /boot/config-<version> when it has one (libbpf reads it
// to resolve a BPF program's Kconfig externs). Throws on any bad input,
// before anything is written or booted.
ArchiveEntries guest_layout(const std::vector<IncludeSpec>& specs, const KernelInfo& kernel,
                            const ClosureOptions& closure = {});

// Guest memory that fits an initramfs of `bytes`: the kernel holds the archive
// and its unpacked copy at once while it boots.
int memory_for_initramfs(std::uintmax_t bytes);

}  // namespace ktstr
