#include "ktstr/topology.hpp"

#include <charconv>

#include "ktstr/error.hpp"

namespace ktstr {
namespace {

// Reads "<number><unit>" from the front of `text`.
int take(std::string_view& text, char unit, std::string_view whole) {
    int value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    size_t used = static_cast<size_t>(end - text.data());
    if (ec != std::errc() || used == 0 || used >= text.size() || text[used] != unit || value < 1)
        throw Error("cannot parse topology " + quoted(std::string(whole)) +
                    ": expected <nodes>n<llcs>l<cores>c<threads>t with each at least 1, "
                    "like 1n2l4c1t");
    text.remove_prefix(used + 1);
    return value;
}

}  // namespace

Topology Topology::parse(std::string_view text) {
    std::string_view rest = text;
    Topology t;
    t.numa_nodes = take(rest, 'n', text);
    t.llcs = take(rest, 'l', text);
    t.cores_per_llc = take(rest, 'c', text);
    t.threads_per_core = take(rest, 't', text);
    if (!rest.empty())
        throw Error("cannot parse topology " + quoted(std::string(text)) + ": trailing text");
    if (t.llcs % t.numa_nodes != 0)
        throw Error("topology " + quoted(std::string(text)) + ": " + std::to_string(t.llcs) +
                    " LLCs cannot be shared evenly by " + std::to_string(t.numa_nodes) +
                    " NUMA nodes");
    return t;
}

std::string Topology::to_string() const {
    return std::to_string(numa_nodes) + "n" + std::to_string(llcs) + "l" +
           std::to_string(cores_per_llc) + "c" + std::to_string(threads_per_core) + "t";
}

}  // namespace ktstr
