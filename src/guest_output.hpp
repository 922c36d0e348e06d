// Where the guest's output goes on the host: each stream to its own descriptor, and streams
// that share one (the console and the command's stderr under -v) kept in whole lines.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "ktstr/error.hpp"
#include "ktstr/fd.hpp"
#include "ktstr/log.hpp"

namespace ktstr {

// Writes to one of our outputs; when it fails (closed pipe, full disk) the rest is dropped.
inline void forward(int& fd, const char* data, size_t n, const char* what) {
    if (fd < 0) return;
    try {
        write_all(fd, data, n, what);
    } catch (const SysError& e) {
        log(LogLevel::Warn, "{}; dropping the rest of it", e.what());
        fd = -1;
    }
}

// Streams that reach one destination (the console and the command's stderr under -v): each
// comes in pieces, so a line of one could be cut by a line of another. A stream's complete
// lines go out at once; its unfinished line is held until its newline, until it has been
// idle kLineIdleMs (a prompt, a progress line), has kLineHeldMax bytes, or the end. While one
// stream's unfinished line is out, the others wait for its newline, at most kLineWaitMs.
class SharedLines {
  public:
    static constexpr double kLineIdleMs = 500;
    static constexpr double kLineWaitMs = 5000;
    static constexpr size_t kLineHeldMax = 65536;

    void add_stream(int index, int* fd) { streams_.push_back({index, fd, {}, 0}); }
    bool has(int index) const { return find(index) != nullptr; }

    void add(int index, const char* data, size_t n, double now_ms) {
        Stream* s = find(index);
        s->held.append(data, n);
        s->last_ms = now_ms;
        pump(now_ms);
    }

    // Writes what may go out now.
    void pump(double now_ms) {
        for (bool wrote = true; wrote;) {
            wrote = false;
            for (size_t i = 0; i < streams_.size(); ++i)
                wrote |= write_ready(streams_[(first() + i) % streams_.size()], now_ms);
        }
    }

    // When pump() next has something to do (-1: only when more comes).
    double next_ms() const {
        double next = -1;
        auto sooner = [&](double t) { next = next < 0 ? t : std::min(next, t); };
        for (const auto& s : streams_) {
            if (s.held.empty()) continue;
            if (blocked(s)) sooner(mid_since_ms_ + kLineWaitMs);
            if (s.held.back() != '\n') sooner(s.last_ms + kLineIdleMs);
        }
        return next;
    }

    // The end of the run: everything held, the unfinished line out first.
    void finish() {
        for (size_t i = 0; i < streams_.size(); ++i) {
            auto& s = streams_[(first() + i) % streams_.size()];
            forward(*s.fd, s.held.data(), s.held.size(), "guest output");
            s.held.clear();
        }
    }

  private:
    struct Stream {
        int index;
        int* fd;
        std::string held;
        double last_ms = 0;
    };

    const Stream* find(int index) const {
        for (const auto& s : streams_)
            if (s.index == index) return &s;
        return nullptr;
    }
    Stream* find(int index) { return const_cast<Stream*>(std::as_const(*this).find(index)); }
    size_t first() const { return mid_line_ < 0 ? 0 : size_t(mid_line_); }
    bool blocked(const Stream& s) const {
        return mid_line_ >= 0 && &streams_[size_t(mid_line_)] != &s;
    }

    bool write_ready(Stream& s, double now_ms) {
        if (s.held.empty() || (blocked(s) && now_ms < mid_since_ms_ + kLineWaitMs)) return false;
        auto nl = s.held.rfind('\n');
        bool all = now_ms >= s.last_ms + kLineIdleMs || s.held.size() >= kLineHeldMax;
        size_t n = all ? s.held.size() : nl == std::string::npos ? 0 : nl + 1;
        if (n == 0) return false;
        bool unfinished = s.held[n - 1] != '\n';
        forward(*s.fd, s.held.data(), n, "guest output");
        s.held.erase(0, n);
        int self = int(&s - streams_.data());
        if (unfinished && mid_line_ != self) mid_since_ms_ = now_ms;
        mid_line_ = unfinished ? self : -1;
        return true;
    }

    std::vector<Stream> streams_;
    int mid_line_ = -1;  // the stream whose unfinished line is out, if any
    double mid_since_ms_ = 0;
};

}  // namespace ktstr
