// Small RAII owners for POSIX handles: a file descriptor, a pipe, a temp dir.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>

#include "ktstr/error.hpp"

namespace ktstr {

class Fd {
  public:
    Fd() = default;
    explicit Fd(int fd) noexcept : fd_(fd) {}
    Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    Fd& operator=(Fd&& o) noexcept {
        if (this != &o) reset(std::exchange(o.fd_, -1));
        return *this;
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() { reset(); }

    int get() const noexcept { return fd_; }
    explicit operator bool() const noexcept { return fd_ >= 0; }
    int release() noexcept { return std::exchange(fd_, -1); }
    // close() is not retried on EINTR: Linux frees the descriptor either way,
    // and a retry could close a descriptor another thread just received.
    void reset(int fd = -1) noexcept {
        if (fd_ >= 0) ::close(fd_);
        fd_ = fd;
    }

    static Fd open(const std::string& path, int flags, mode_t mode = 0644) {
        int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
        if (fd < 0) throw_errno("cannot open " + quoted(path));
        return Fd(fd);
    }

  private:
    int fd_ = -1;
};

struct Pipe {
    Fd read;
    Fd write;
    static Pipe make(int flags = O_CLOEXEC) {
        int fds[2];
        if (::pipe2(fds, flags) != 0) throw_errno("cannot create pipe");
        return Pipe{Fd(fds[0]), Fd(fds[1])};
    }
};

inline void set_nonblocking(const Fd& fd, const std::string& what) {
    int flags = ::fcntl(fd.get(), F_GETFL);
    if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) < 0)
        throw_errno("cannot make " + what + " non-blocking");
}

// Milliseconds left until `when`, as poll() takes them: 0 once past, -1 (no bound) without one.
inline int ms_until(std::optional<std::chrono::steady_clock::time_point> when) {
    if (!when) return -1;
    auto left = (*when - std::chrono::steady_clock::now());
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
    return static_cast<int>(std::clamp<long long>(ms, 0, 1 << 30));
}

// Write all of `len` bytes, retrying on EINTR and short writes.
// Waits for room when `fd` is non-blocking (a caller's stdout may be: the flag belongs to the
// open file, shared with whoever set it), so every byte goes, as on a blocking fd.
inline void write_all(int fd, const void* data, size_t len, const std::string& what) {
    auto p = static_cast<const char*>(data);
    while (len > 0) {
        ssize_t n = ::write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) {
            pollfd room{fd, POLLOUT, 0};
            if (::poll(&room, 1, -1) < 0 && errno != EINTR)
                throw_errno("cannot wait to write " + what);
            continue;
        }
        if (n < 0) throw_errno("cannot write " + what);
        p += n;
        len -= static_cast<size_t>(n);
    }
}

// The whole content of a small file; nullopt when it cannot be opened. Plain read(), no
// std::ifstream: the guest init links statically, and iostreams would add the C++ locale
// machinery (some 600 KB of init, unpacked at every boot, and 50 ms of start-up under TCG).
inline std::optional<std::string> read_file_if_present(const char* path) {
    Fd fd(::open(path, O_RDONLY | O_CLOEXEC));
    if (!fd) return std::nullopt;
    std::string text;
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw_errno("cannot read " + quoted(path));
        if (n == 0) return text;
        text.append(buf, static_cast<size_t>(n));
    }
}

// A directory removed with everything in it when the owner goes away. It holds the lock on its
// lock file for its whole life, so that a later run can remove it if this one is killed
// (temp_dir.hpp). Its prefix starts with "ktstr" for that sweep to find it.
class TempDir {
  public:
    explicit TempDir(const std::string& prefix = "ktstr");  // in src/temp_dir.cpp
    TempDir(TempDir&& o) noexcept : path_(std::move(o.path_)), lock_(std::move(o.lock_)) {
        o.path_.clear();
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    // The lock is released after the removal (members outlive the body), never before.
    ~TempDir() {
        std::error_code ec;
        if (!path_.empty()) std::filesystem::remove_all(path_, ec);
    }
    const std::filesystem::path& path() const noexcept { return path_; }

  private:
    std::filesystem::path path_;
    Fd lock_;
};

}  // namespace ktstr
