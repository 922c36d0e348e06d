// Running one VM: start QEMU, hand the guest its job, stream its output, and
// turn every ending into an outcome with a reason. Never hangs: a watchdog
// covers boot, the run, and shutdown.
#pragma once

#include <filesystem>
#include <string>

#include "ktstr/kernel.hpp"
#include "ktstr/protocol.hpp"
#include "ktstr/qemu.hpp"

namespace ktstr {

struct VmSpec {
    KernelInfo kernel;
    std::filesystem::path initramfs;
    AccelChoice accel;
    Topology topology;
    int memory_mb = 1024;
    std::vector<std::string> cmdline_extra;
    double boot_timeout_s = 0;  // 0: chosen from the accelerator
    bool interactive = false;   // console on our terminal
    bool verbose = false;
    int stdout_fd = 1;  // where the guest command's stdout goes
    int stderr_fd = 2;
    // Readable when the run must stop (the caller owns the signals). Without
    // it, run_vm itself stops on SIGINT, SIGTERM and SIGHUP.
    int cancel_fd = -1;
};

enum class Outcome {
    Verdict,       // the guest reported how the command ended
    BootTimeout,   // no hello from the guest within the boot timeout
    RunTimeout,    // hello, but no verdict within the run timeout
    KernelPanic,   // the console shows a panic, and no verdict came
    QemuFailed,    // QEMU exited or could not start before the guest said hello
    NoVerdict,     // the guest powered off or QEMU exited without a verdict
    Interrupted,   // SIGINT or SIGTERM on the host
};

struct VmResult {
    Outcome outcome = Outcome::NoVerdict;
    protocol::Verdict verdict;
    std::string reason;          // for every outcome but a clean verdict
    std::string console_tail;    // the last lines of the console
    int boot_attempts = 1;       // 2 when an early-boot panic was retried
    double ms_total = 0;
    double ms_to_hello = 0;   // host: from just before QEMU's start to the guest's hello
    double ms_qemu_exit = 0;  // host: from just before QEMU's start to its exit
    protocol::Hello hello;    // the guest's stamps in its hello

    // The exit code `ktstr shell` passes on: the command's own, 128+N for a
    // signal, 124 for a timeout, 125 for a failure of the VM itself.
    int exit_code() const;
    bool early_panic() const { return outcome == Outcome::KernelPanic && ms_to_hello == 0; }
};

const char* outcome_name(Outcome o);

// Boots, runs `job`, and returns how it ended. A panic before the guest's
// hello is an infrastructure failure and is retried once.
VmResult run_vm(const VmSpec& spec, const protocol::Job& job);

}  // namespace ktstr
