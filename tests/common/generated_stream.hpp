// Test data shared by the host and in-guest payload tests: large output whose bytes are known.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace ktstr::testing {

// Deterministic bytes of every value, starting with one line of 1 MB.
inline std::string generated_stream(std::size_t size, std::uint32_t seed) {
    std::string s;
    s.reserve(size);
    std::uint32_t x = seed;
    auto next = [&x] { return x = x * 1664525u + 1013904223u; };
    while (s.size() < (1u << 20)) s.push_back(static_cast<char>('a' + (next() >> 24) % 26));
    s.push_back('\n');
    while (s.size() < size) s.push_back(static_cast<char>(next() >> 24));
    return s;
}

}  // namespace ktstr::testing
