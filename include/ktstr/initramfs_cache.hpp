// A content-addressed cache of initramfs archives. The key covers every
// entry's archive path, kind, mode and link target, and for each host file
// its device, inode, size, mtime and ctime: a file changed in any way (ctime
// cannot be set back) gets a new key, so a stale archive is never served.
// Archives are written to a locked temp file (PartFile), flushed to disk and
// renamed in, so concurrent runs share the cache safely: each sees a whole
// archive or none, and a temp file whose writer is gone goes at the next lookup.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "ktstr/archive_entry.hpp"
#include "ktstr/compression.hpp"
#include "ktstr/fd.hpp"

namespace ktstr {

struct CachedInitramfs {
    std::filesystem::path path;
    std::string key;
    bool hit = false;
    std::uintmax_t unpacked_bytes = 0;  // the uncompressed archive's size
    Fd in_use;  // a shared flock on `path`: no run's trim removes it while this lives
};

// cache_dir()/initramfs.
std::filesystem::path initramfs_cache_dir();

// The cache key of `entries`: hex SHA-256 over what the archive depends on.
std::string initramfs_key(const ArchiveEntries& entries);

// The archive for `entries`, written into `dir` first when it is not there;
// compressed, it is made from the cached uncompressed one and cached beside
// it. Each call first removes the temp files of writers that are gone. After a
// write the cache is trimmed to $KTSTR_CACHE_MAX_MB (default 2048 MB), least
// recently used first, never touching an archive a run holds in use.
CachedInitramfs cached_initramfs(const ArchiveEntries& entries,
                                 const std::filesystem::path& dir = initramfs_cache_dir(),
                                 Compression compression = Compression::None);

// Removes every cached archive no run holds in use, and every temp file whose
// writer is gone; returns how many bytes were freed.
std::uintmax_t clean_initramfs_cache(const std::filesystem::path& dir = initramfs_cache_dir());

}  // namespace ktstr
