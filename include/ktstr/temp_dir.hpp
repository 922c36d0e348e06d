// The temp dirs of runs that were killed. Every TempDir (fd.hpp) holds an flock on its lock
// file from before the file has its name until the directory is gone, so a directory whose
// lock can be taken belongs to a run that has ended: a SIGKILL, a crash or a power cut left it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "ktstr/fd.hpp"

namespace ktstr {

// The lock file inside every TempDir.
inline constexpr const char* kTempDirLock = ".ktstr-lock";

struct TempDirSweep {
    std::vector<std::filesystem::path> removed;
    std::vector<std::string> failed;  // "cannot remove '<dir>' ...: <why>", each also warned
};

// Removes from `tmp` every directory a TempDir made (named `ktstr*.XXXXXX`, owned by this
// user, not a symlink) whose lock is free, and every one abandoned before it had its lock (empty
// and a minute old). Says at debug level what it removed, warns of what it could not remove,
// and never throws.
TempDirSweep sweep_stale_temp_dirs(const std::filesystem::path& tmp);

// sweep_stale_temp_dirs($TMPDIR), once per process: every run does it before its first TempDir.
void sweep_stale_temp_dirs_once();

// A cache file being written: `.<name>.XXXXXX.part` in its directory, renamed to its final name
// by commit() and removed otherwise. Its writer holds an flock on it from before the name is
// surely its own until after the rename, so a `.part` file whose lock is free was left by a
// writer that is gone (SIGKILL, crash, power cut), and one being written is never taken.
class PartFile {
  public:
    PartFile(const std::filesystem::path& dir, const std::string& name);
    PartFile(const PartFile&) = delete;
    PartFile& operator=(const PartFile&) = delete;
    ~PartFile();  // the file goes while its lock is still held

    int fd() const noexcept { return fd_.get(); }
    const std::filesystem::path& path() const noexcept { return path_; }

    // Mode 0644, flushed to disk, then renamed to `to` (the lock is released after the rename).
    void commit(const std::filesystem::path& to);

  private:
    std::filesystem::path path_;
    Fd fd_;
};

// Whether `name` is a PartFile's: `.<name>.XXXXXX.part`.
bool is_part_file(const std::string& name);

// Whether `path` still names the file open at `fd` (same device and inode, not a symlink).
bool names_file(const std::filesystem::path& path, int fd);

// Removes `path` when no process holds an flock on it: the lock is taken here (LOCK_EX, not
// waiting) and the name checked to still be the file locked before it goes. Returns the bytes
// freed, or nothing when it is in use, gone, or not a regular file.
std::optional<std::uintmax_t> remove_unless_locked(const std::filesystem::path& path);

// Removes from `dir` every PartFile whose writer is gone; returns the bytes freed. Says at
// debug level what it removed and never throws.
std::uintmax_t sweep_dead_writers(const std::filesystem::path& dir);

}  // namespace ktstr
