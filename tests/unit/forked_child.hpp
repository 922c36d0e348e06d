// Child processes for tests of what happens when a process is killed: forked, dying with the test.
#pragma once

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch_test_macros.hpp>

#include <functional>
#include <string>

// Runs `body` in a forked child that dies with this process; its exit code is body's.
inline pid_t fork_child(const std::function<int()>& body) {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid > 0) return pid;
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    int rc = 1;
    try {
        rc = body();
    } catch (...) {
    }
    ::_exit(rc);
}

inline int exit_code(pid_t pid) {
    int status = 0;
    if (::waitpid(pid, &status, 0) != pid) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Kills the child with SIGKILL and reaps it; `pid` is -1 after.
inline void kill_child(pid_t& pid) {
    if (pid > 0) ::kill(pid, SIGKILL), exit_code(pid);
    pid = -1;
}

// A line a child wrote to `fd`, without its newline.
inline std::string read_line(int fd) {
    std::string line;
    char c;
    while (::read(fd, &c, 1) == 1 && c != '\n') line += c;
    return line;
}
