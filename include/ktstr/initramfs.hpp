// The initramfs writer: newc cpio, written by our own code, deterministic
// (sorted, fixed mtimes and owners), streamed (file bytes are copied in
// chunks, never held whole), with every parent directory present.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "ktstr/archive_entry.hpp"
#include "ktstr/compression.hpp"

namespace ktstr {

// newc stores sizes in 8 hex digits: a file of 4 GiB or more cannot travel.
inline constexpr uint64_t kMaxArchiveFileSize = 0xffffffffULL;

// The permission bits an entry gets in the archive: `mode` when set, else the
// host file's (stat), else 0644 for generated files and 0755 for directories;
// symlinks always get 0777. Throws ktstr::SysError when the host file is gone.
uint32_t permission_bits(const ArchiveEntry& entry);

// Writes `entries` (plus any missing parent directories) to `out`, through a
// temp file renamed into place: on any error nothing is left at `out`.
// Entries are merged first (merge_entries), so repeats collapse and clashes throw;
// an entry below a non-directory entry, or a host file that changes size while
// it is copied, throws ktstr::Error naming it.
void write_initramfs(const ArchiveEntries& entries, const std::filesystem::path& out);

// Writes `archive` compressed with `c` to `out`, through a temp file as above.
void compress_initramfs(const std::filesystem::path& archive, const std::filesystem::path& out,
                        Compression c);

// Writes the archive to an open descriptor (no temp file, no rename): a pipe, or a
// file that already holds a layer (each archive ends 4-byte aligned, as the
// kernel expects of concatenated archives).
void write_cpio(const ArchiveEntries& entries, int fd);

// Where the base layer lists busybox's applets, one name a line.
inline constexpr const char* kBusyboxAppletList = "/ktstr/busybox-applets";

// Whether `name` is one of the lines of `list` (as kBusyboxAppletList holds them).
inline bool is_listed(std::string_view list, std::string_view name) {
    while (!list.empty()) {
        auto end = list.find('\n');
        if (list.substr(0, end) == name) return true;
        if (end == std::string_view::npos) break;
        list.remove_prefix(end + 1);
    }
    return false;
}

// The base layer: /init (the guest init binary), /bin/busybox with links from /bin/sh and
// /usr/bin/env only, the list of its applets (from one run of `busybox --list-full` on the
// host; busybox's own init and linuxrc are left out: PID 1 is /init) at
// kBusyboxAppletList, and the empty mount points /proc /sys /dev /tmp /run and
// /include-files, /ktstr.
ArchiveEntries base_layer(const std::filesystem::path& init_binary,
                          const std::filesystem::path& busybox);

// One line per archive entry, as write_cpio would write them (merged, sorted,
// parents added), in aligned columns: archive path, host source ("(generated)",
// "-> target" for links), size in bytes, reason.
std::string format_layout(const ArchiveEntries& entries);

}  // namespace ktstr
