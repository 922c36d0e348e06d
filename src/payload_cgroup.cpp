#include "payload_cgroup.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "ktstr/error.hpp"

namespace ktstr {

std::vector<pid_t> read_cgroup_procs(const std::filesystem::path& cgroup) {
    std::vector<pid_t> pids;
    const auto file = cgroup / "cgroup.procs";
    std::FILE* procs = std::fopen(file.c_str(), "re");
    if (!procs && errno == ENOENT) return pids;  // the cgroup is gone, so are its processes
    if (!procs) throw_errno("cannot read " + quoted(file.string()));
    for (int pid; std::fscanf(procs, "%d", &pid) == 1;) pids.push_back(pid);
    std::fclose(procs);
    return pids;
}

bool write_cgroup_file(const std::filesystem::path& cgroup, const char* name, const char* value) {
    std::string file = (cgroup / name).string();
    Fd control(::open(file.c_str(), O_WRONLY | O_CLOEXEC));
    if (!control && errno == ENOENT) return false;
    if (!control) throw_errno("cannot open " + quoted(file));
    write_all(control.get(), value, std::strlen(value), quoted(file));
    return true;
}

CgroupEvents::CgroupEvents(const std::filesystem::path& cgroup)
    : file_((cgroup / "cgroup.events").string()), fd_(::open(file_.c_str(), O_RDONLY | O_CLOEXEC)) {
    if (!fd_ && errno != ENOENT) throw_errno("cannot open " + quoted(file_));
}

bool CgroupEvents::await(std::string_view key, char value,
                         std::chrono::steady_clock::time_point until) {
    using Clock = std::chrono::steady_clock;
    for (;;) {
        if (read(key) == value) return true;
        if (Clock::now() >= until) return false;
        pollfd event{fd_.get(), POLLPRI, 0};
        if (::poll(&event, 1, ms_until(until)) < 0 && errno != EINTR)
            throw_errno("cannot wait on " + quoted(file_));
    }
}

char CgroupEvents::read(std::string_view key) {
    if (!fd_) return '0';
    char text[256];
    ssize_t n = ::pread(fd_.get(), text, sizeof text - 1, 0);
    if (n < 0 && errno == ENODEV) return '0';  // removed while open
    if (n < 0) throw_errno("cannot read " + quoted(file_));
    std::string_view events(text, static_cast<std::size_t>(n));
    for (auto at = events.find(key); at != std::string_view::npos; at = events.find(key, at + 1))
        if ((at == 0 || events[at - 1] == '\n') && at + key.size() + 1 < events.size())
            return events[at + key.size() + 1];
    return '0';
}

}  // namespace ktstr
