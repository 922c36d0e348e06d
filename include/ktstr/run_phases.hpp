// Where a run's time goes, from stamps host and guest already exchange: the
// host's clock around packing and QEMU, and the guest's CLOCK_BOOTTIME in its
// hello and verdict. The guest's clock starts when its kernel starts keeping
// time; the hello lines the two clocks up (its transit time is left out).
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ktstr/vm_run.hpp"

namespace ktstr {

struct RunPhases {
    double pack_ms = 0;             // host: resolving, closure, initramfs (cache hit or write)
    double qemu_start_ms = 0;       // QEMU's start, firmware, kernel load, up to the guest's clock
    double boot_to_init_ms = 0;     // kernel boot up to init (guest clock)
    double init_to_payload_ms = 0;  // mounts, ports, hello, job (guest clock)
    double payload_ms = 0;          // the command or test body (guest clock)
    double shutdown_ms = 0;         // cleanup, verdict, power-off, QEMU's exit

    double total_ms() const;
    // Name and value of each phase, in order.
    std::vector<std::pair<const char*, double>> named() const;
};

// The phases of a run that ended in a verdict; nullopt when the guest's stamps
// are missing (no hello or no verdict). Phases the clocks' skew would make
// negative are clamped to 0, and shutdown takes what is left, so the phases
// add up to pack_ms + the VM's wall time.
std::optional<RunPhases> run_phases(double pack_ms, const VmResult& vm);

// One line: "pack 12 ms, qemu start 380 ms, ... (total 2950 ms)".
std::string format_phases(const RunPhases& p);

}  // namespace ktstr
