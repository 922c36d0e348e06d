// A guest CPU topology: NUMA nodes, last-level caches, cores per LLC and
// threads per core. Text form "1n2l4c1t" (nodes, LLCs in all, cores per
// LLC, threads per core).
#pragma once

#include <string>
#include <string_view>

namespace ktstr {

struct Topology {
    int numa_nodes = 1;
    int llcs = 1;
    int cores_per_llc = 2;
    int threads_per_core = 1;

    constexpr int cpus() const { return llcs * cores_per_llc * threads_per_core; }
    constexpr bool operator==(const Topology&) const = default;

    // Throws ktstr::Error on malformed text or impossible shapes (an LLC count
    // that the nodes cannot share evenly, zero of anything).
    static Topology parse(std::string_view text);
    std::string to_string() const;
};

}  // namespace ktstr
