// Running one VM: start QEMU, hand the guest its job, stream its output, and
// turn every ending into an outcome with a reason. Never hangs: a watchdog
// covers boot, the run, and shutdown.
#pragma once

#include <signal.h>

#include <cstdint>
#include <filesystem>
#include <string>

#include "ktstr/guest_terminal.hpp"
#include "ktstr/kernel.hpp"
#include "ktstr/protocol.hpp"
#include "ktstr/qemu.hpp"

namespace ktstr {

// The signals that stop a run cleanly (SIGINT, SIGTERM, SIGHUP): whoever runs VMs blocks them
// and reads them from a signalfd, so that every way out cleans up.
sigset_t stop_signals();

struct VmSpec {
    KernelInfo kernel;
    // What -kernel gets: empty means run_vm picks (pvh_image(): the ELF vmlinux through its
    // PVH entry when the kernel has one, else kernel.image).
    std::filesystem::path boot_image;
    std::filesystem::path initramfs;
    AccelChoice accel;
    Topology topology;
    int memory_mb = 1024;
    std::vector<std::string> cmdline_extra;
    double boot_timeout_s = 0;  // 0: default_boot_timeout_s()
    bool verbose = false;
    int stdout_fd = 1;  // where the guest command's stdout goes
    int stderr_fd = 2;
    // The serial console streams here as it is printed (-1: kept for the tail only). Where this
    // is where the command's stdout or stderr goes too, they are written line by line.
    int console_fd = -1;
    // An interactive shell's input: relayed to the console from the guest's "started" on, so
    // nothing is lost to a console nobody reads yet. At its end the shell gets ^D. A terminal
    // is put in raw mode (Ctrl-C goes to the guest) and restored on every way out. Other input
    // is a script: its ^D is sent again until the verdict (so every later read ends), and a
    // line longer than the guest's terminal holds goes in pieces.
    int input_fd = -1;
    // The terminal input_fd is, when the caller set it up before the run (so it is quiet
    // while ktstr packs); else run_vm sets one up itself.
    GuestTerminal* terminal = nullptr;
    // Readable when the run must stop (the caller owns the signals). Without
    // it, run_vm itself stops on SIGINT, SIGTERM and SIGHUP.
    int cancel_fd = -1;
};

enum class Outcome {
    Verdict,      // the guest reported how the command ended
    BootTimeout,  // no hello from the guest within the boot timeout
    RunTimeout,   // hello, but no verdict within the run timeout
    KernelPanic,  // the console shows a panic, and no verdict came
    QemuFailed,   // QEMU exited or could not start before the guest said hello
    NoVerdict,    // the guest powered off or QEMU exited without a verdict
    Interrupted,  // SIGINT or SIGTERM on the host
};

struct VmResult {
    Outcome outcome = Outcome::NoVerdict;
    protocol::Verdict verdict;
    std::string reason;        // for every outcome but a clean verdict
    std::string console_tail;  // the last lines of the console
    std::string console;       // with VmSpec::verbose: the whole console (its last 2-4 MB)
    int boot_attempts = 1;     // 2 when an early-boot panic was retried
    int stop_signal = SIGINT;  // for Outcome::Interrupted: the host signal that stopped it
    bool boot_race = false;    // a panic before hello that looks like the TCG boot race
    double ms_total = 0;
    double ms_to_hello = 0;   // host: from just before QEMU's start to the guest's hello
    double ms_qemu_exit = 0;  // host: from just before QEMU's start to its exit
    protocol::Hello hello;    // the guest's stamps in its hello

    // The exit code `ktstr shell` passes on: the command's own, 128+N for a
    // signal, 124 for a timeout, 125 for a failure of the VM itself.
    int exit_code() const;
};

const char* outcome_name(Outcome o);

// Boots, runs `job`, and returns how it ended. A panic before the guest's hello with the
// signature of the TCG early-boot race (an int3 oops) is retried once; any other panic is the
// configuration's (memory, command line) and is reported with what to change.
VmResult run_vm(const VmSpec& spec, const protocol::Job& job);

// How long a guest may take to say hello: a base for the accelerator, plus the time the
// kernel needs to unpack an initramfs of this size (measured; see the README).
double default_boot_timeout_s(Accel accel, std::uintmax_t initramfs_bytes);

// What a console says about a panic before the guest's hello: whether it is the TCG boot
// race (worth one retry), and the reason to show, with what to change when it is ours.
struct EarlyPanic {
    bool boot_race = false;
    std::string reason;
};
EarlyPanic explain_early_panic(const std::string& console, int memory_mb,
                               std::uintmax_t initramfs_bytes);

// The line of a console that starts a kernel panic ("[   1.2] Kernel panic - not syncing:
// ..."), or npos.
std::size_t find_panic(const std::string& console);

}  // namespace ktstr
