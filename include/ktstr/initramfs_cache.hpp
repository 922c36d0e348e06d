// A content-addressed cache of initramfs archives. The key covers every
// entry's archive path, kind, mode and link target, and for each host file
// its device, inode, size, mtime and ctime: a file changed in any way (ctime
// cannot be set back) gets a new key, so a stale archive is never served.
// Archives are written to a temp file and renamed in, so concurrent runs
// share the cache safely.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "ktstr/archive_entry.hpp"

namespace ktstr {

struct CachedInitramfs {
    std::filesystem::path path;
    std::string key;
    bool hit = false;
};

// cache_dir()/initramfs.
std::filesystem::path initramfs_cache_dir();

// The cache key of `entries`: hex SHA-256 over what the archive depends on.
std::string initramfs_key(const ArchiveEntries& entries);

// The archive for `entries`, written into `dir` first when it is not there.
// Afterwards the cache is trimmed to $KTSTR_CACHE_MAX_MB (default 2048 MB),
// oldest first, never touching archives used in the last ten minutes.
CachedInitramfs cached_initramfs(const ArchiveEntries& entries,
                                 const std::filesystem::path& dir = initramfs_cache_dir());

// Removes every cached archive; returns how many bytes were freed.
std::uintmax_t clean_initramfs_cache(const std::filesystem::path& dir = initramfs_cache_dir());

}  // namespace ktstr
