// The cgroup v2 control files a payload's kill uses: its members (cgroup.procs), one-value
// controls (cgroup.freeze, cgroup.kill) and the changes the kernel announces (cgroup.events).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "ktstr/fd.hpp"

namespace ktstr {

// The member processes; none when the cgroup is gone (so are its processes).
std::vector<pid_t> read_cgroup_procs(const std::filesystem::path& cgroup);

// Writes one short value into a cgroup control file; false when the file does not exist.
bool write_cgroup_file(const std::filesystem::path& cgroup, const char* name, const char* value);

// cgroup.events, which the kernel marks for poll (POLLPRI) whenever a value in it changes.
class CgroupEvents {
  public:
    explicit CgroupEvents(const std::filesystem::path& cgroup);

    // Waits until `key` reads `value` or `until` passes; says whether it did. A cgroup that
    // is gone counts as empty and not frozen.
    bool await(std::string_view key, char value, std::chrono::steady_clock::time_point until);

  private:
    char read(std::string_view key);

    std::string file_;
    Fd fd_;
};

}  // namespace ktstr
