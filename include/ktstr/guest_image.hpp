// What every guest gets: the init, busybox, the include files and their ELF
// closure, put together as one list of archive entries.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
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

// The guest's PATH for a layout: every directory below /include-files that directly holds an
// executable file (or a link, within the archive, to one), deepest first and ties in path
// order; then /include-files; then busybox's /bin:/sbin:/usr/bin:/usr/sbin. The order is
// fixed so that when two include files share a name, which one runs is predictable. Worked
// out here rather than by a directory walk in the guest, where code run once costs its
// translation under TCG; the job carries it (protocol::Job::path).
std::string guest_path(const ArchiveEntries& entries);

// Guest memory that fits an initramfs of `bytes`: the kernel holds the archive
// and its unpacked copy at once while it boots.
int memory_for_initramfs(std::uintmax_t bytes);

}  // namespace ktstr
