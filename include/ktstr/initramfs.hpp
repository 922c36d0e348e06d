// The initramfs writer: newc cpio, written by our own code, deterministic
// (sorted, fixed mtimes and owners), streamed (file bytes are copied in
// chunks, never held whole), with every parent directory present.
#pragma once

#include <filesystem>
#include <string>

#include "ktstr/archive_entry.hpp"

namespace ktstr {

// Writes `entries` (plus any missing parent directories) to `out`, through a
// temp file renamed into place: on any error nothing is left at `out`.
void write_initramfs(const ArchiveEntries& entries, const std::filesystem::path& out);

// Writes the archive to an open descriptor (no trailer rename); for streaming.
void write_cpio(const ArchiveEntries& entries, int fd);

// The base layer: /init (the guest init binary) and busybox with its applet links.
ArchiveEntries base_layer(const std::filesystem::path& init_binary,
                          const std::filesystem::path& busybox);

// One line per entry: archive path, host source, size, reason.
std::string format_layout(const ArchiveEntries& entries);

}  // namespace ktstr
