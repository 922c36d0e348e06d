#include "ktstr/run_phases.hpp"

#include <fmt/core.h>

#include <algorithm>

namespace ktstr {

double RunPhases::total_ms() const {
    double sum = 0;
    for (const auto& [name, ms] : named()) sum += ms;
    return sum;
}

std::vector<std::pair<const char*, double>> RunPhases::named() const {
    return {{"pack", pack_ms},
            {"qemu start", qemu_start_ms},
            {"boot to init", boot_to_init_ms},
            {"init to payload", init_to_payload_ms},
            {"payload", payload_ms},
            {"shutdown", shutdown_ms}};
}

std::optional<RunPhases> run_phases(double pack_ms, const VmResult& vm) {
    const auto& h = vm.hello;
    const auto& v = vm.verdict;
    if (vm.outcome != Outcome::Verdict || h.ms_sent <= 0 || v.ms_payload_end <= 0)
        return std::nullopt;

    // Host time = guest time + offset, with the offset taken at the hello.
    const double offset = std::max(0.0, vm.ms_to_hello - h.ms_sent);
    const double vm_ms = vm.ms_qemu_exit > 0 ? vm.ms_qemu_exit : vm.ms_total;
    RunPhases p;
    p.pack_ms = std::max(0.0, pack_ms);
    p.qemu_start_ms = offset;
    p.boot_to_init_ms = std::max(0.0, h.ms_init);
    p.init_to_payload_ms = std::max(0.0, v.ms_payload_start - h.ms_init);
    p.payload_ms = std::max(0.0, v.ms_payload_end - v.ms_payload_start);
    double before_shutdown =
        p.qemu_start_ms + p.boot_to_init_ms + p.init_to_payload_ms + p.payload_ms;
    p.shutdown_ms = std::max(0.0, vm_ms - before_shutdown);
    return p;
}

std::string format_phases(const RunPhases& p) {
    std::string line;
    for (const auto& [name, ms] : p.named())
        line += fmt::format("{}{} {:.0f} ms", line.empty() ? "" : ", ", name, ms);
    return line + fmt::format(" (total {:.0f} ms)", p.total_ms());
}

}  // namespace ktstr
