// The temp dirs of runs that were killed. Every TempDir (fd.hpp) holds an flock on its lock
// file from before the file has its name until the directory is gone, so a directory whose
// lock can be taken belongs to a run that has ended: a SIGKILL, a crash or a power cut left it.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

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

}  // namespace ktstr
