// One line per event on stderr, with a level. Quiet by default: info and
// above; -v shows debug lines too, and so does KTSTR_LOG=debug, without -v's
// full kernel log (so a benchmark sees the run's phases at default settings).
#pragma once

#include <fmt/core.h>

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace ktstr {

enum class LogLevel { Debug, Info, Warn, Error };

inline LogLevel& log_threshold() {
    static LogLevel level = [] {
        const char* env = std::getenv("KTSTR_LOG");
        return env && std::string_view(env) == "debug" ? LogLevel::Debug : LogLevel::Info;
    }();
    return level;
}

template <typename... Args>
void log(LogLevel level, fmt::format_string<Args...> format, Args&&... args) {
    if (level < log_threshold()) return;
    static constexpr const char* names[] = {"debug", "info", "warning", "error"};
    auto line = fmt::format("ktstr: {}{}\n",
                            level == LogLevel::Info ? "" : fmt::format("{}: ", names[int(level)]),
                            fmt::format(format, std::forward<Args>(args)...));
    // Never throws: stderr may be a terminal that hung up, and a report must not end the run.
    (void)std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);
}

}  // namespace ktstr
