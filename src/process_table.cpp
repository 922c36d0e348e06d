#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "ktstr/error.hpp"
#include "ktstr/fd.hpp"
#include "ktstr/payload_run.hpp"

namespace ktstr {

std::optional<ProcessEntry> process_entry(pid_t pid) {
    Fd stat(::open(("/proc/" + std::to_string(pid) + "/stat").c_str(), O_RDONLY | O_CLOEXEC));
    if (!stat) return std::nullopt;
    char line[1024];
    ssize_t n = ::read(stat.get(), line, sizeof line - 1);
    if (n <= 0) return std::nullopt;
    line[n] = '\0';

    // The command name may hold spaces and parentheses; the fields follow its last ')'.
    const char* name = std::strchr(line, '(');
    const char* after_name = std::strrchr(line, ')');
    ProcessEntry entry;
    entry.pid = pid;
    unsigned flags = 0;
    if (!name || !after_name || after_name < name ||
        std::sscanf(after_name + 1,
                    " %c %d %d %*d %*d %*d %u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
                    &entry.state, &entry.ppid, &entry.pgrp, &flags, &entry.start_time) != 5)
        return std::nullopt;
    entry.name.assign(name + 1, after_name);
    constexpr unsigned kKernelThreadFlag = 0x00200000;  // PF_KTHREAD
    entry.kernel_thread = (flags & kKernelThreadFlag) != 0;
    return entry;
}

std::vector<ProcessEntry> process_table() {
    std::unique_ptr<DIR, int (*)(DIR*)> proc(::opendir("/proc"), ::closedir);
    if (!proc) throw_errno("cannot open '/proc'");
    std::vector<ProcessEntry> table;
    while (const dirent* entry = ::readdir(proc.get())) {
        if (!std::isdigit(static_cast<unsigned char>(entry->d_name[0]))) continue;
        if (auto p = process_entry(std::atoi(entry->d_name))) table.push_back(*p);
    }
    return table;
}

}  // namespace ktstr
