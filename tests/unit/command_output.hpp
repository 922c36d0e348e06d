// Unit tests that check their results with host tools (cpio, zstd, sha256sum).
#pragma once

#include <catch2/catch_test_macros.hpp>

#include <cstdio>
#include <string>

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
