// Unit tests that check their results with host tools (cpio, zstd, sha256sum), or with
// what the code under test wrote to stderr.
#pragma once

#include <catch2/catch_test_macros.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

#include "ktstr/fd.hpp"

// Runs a shell command; its stdout, and it must succeed.
inline std::string command_output(const std::string& command) {
    FILE* pipe = ::popen(command.c_str(), "r");
    REQUIRE(pipe);
    std::string out;
    char chunk[4096];
    while (size_t n = std::fread(chunk, 1, sizeof chunk, pipe)) out.append(chunk, n);
    INFO(command);
    REQUIRE(::pclose(pipe) == 0);
    return out;
}

// What `fn` writes to stderr (fd 2), through a temp file.
template <typename Fn>
inline std::string stderr_of(Fn fn) {
    ktstr::TempDir tmp;
    auto file = tmp.path() / "stderr";
    ktstr::Fd out(::open(file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
    REQUIRE(out);
    std::fflush(stderr);
    ktstr::Fd saved(::fcntl(2, F_DUPFD_CLOEXEC, 3));
    REQUIRE(::dup2(out.get(), 2) == 2);
    fn();
    std::fflush(stderr);
    ::dup2(saved.get(), 2);
    std::ifstream in(file);
    return {std::istreambuf_iterator<char>(in), {}};
}
