// The QEMU launcher's pure parts: choosing the accelerator and building the
// command line. Running a VM lives in vm_run.hpp.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "ktstr/topology.hpp"

namespace ktstr {

enum class Accel { Kvm, Tcg };

struct AccelChoice {
    Accel accel = Accel::Tcg;
    std::string reason;  // one line: why this one
};

// `requested` is "auto", "kvm" or "tcg" (empty: $KTSTR_ACCEL, else auto). Auto
// takes KVM only when /dev/kvm opens and is a KVM that runs stock kernels: the
// paravirtual kvm_pvm variant hangs them right after decompression. Throws on
// an unknown word, or "kvm" when /dev/kvm cannot be opened.
AccelChoice choose_accel(const std::string& requested);

struct QemuConfig {
    std::filesystem::path kernel;
    std::filesystem::path initramfs;
    Accel accel = Accel::Tcg;
    Topology topology;
    int memory_mb = 1024;
    std::vector<std::string> cmdline_extra;  // words appended to the kernel command line
    std::string job_word;                    // protocol::job_word(), before cmdline_extra
    std::filesystem::path console_socket;    // the serial console; QEMU connects as a client
    std::filesystem::path control_socket;    // the guest's ttyS1; QEMU connects as a client
    std::filesystem::path stdout_socket;     // ttyS2
    std::filesystem::path stderr_socket;     // ttyS3
    bool verbose = false;                    // full kernel log on the console
};

// The longest kernel command line x86 takes (COMMAND_LINE_SIZE, 2048 with its NUL); the
// kernel cuts a longer one short.
inline constexpr size_t kMaxKernelCmdline = 2047;

// The kernel command line for a config.
std::string kernel_cmdline(const QemuConfig& config);

// argv for qemu-system-x86_64, argv[0] included.
std::vector<std::string> qemu_argv(const QemuConfig& config);

}  // namespace ktstr
