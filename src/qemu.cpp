#include "ktstr/qemu.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string_view>

#include "ktstr/error.hpp"
#include "ktstr/fd.hpp"
#include "ktstr/protocol.hpp"

namespace fs = std::filesystem;

namespace ktstr {
namespace {

AccelChoice auto_accel() {
    std::error_code ec;
    if (fs::exists("/sys/module/kvm_pvm", ec))
        return {Accel::Tcg, "/dev/kvm is the paravirtual kvm_pvm, which hangs stock kernels"};
    int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0) return {Accel::Tcg, "/dev/kvm cannot be opened: " + std::string(strerror(errno))};
    ::close(fd);
    return {Accel::Kvm, "/dev/kvm opens"};
}

std::string chardev_socket(const std::string& id, const fs::path& path) {
    return "socket,id=" + id + ",path=" + path.string();
}

}  // namespace

AccelChoice choose_accel(const std::string& requested) {
    std::string word = requested;
    std::string by = "--accel";
    if (word.empty()) {
        const char* env = std::getenv("KTSTR_ACCEL");
        word = env && *env ? env : "auto";
        by = env && *env ? "KTSTR_ACCEL" : "default";
    }
    if (word == "auto") return auto_accel();
    if (word == "tcg") return {Accel::Tcg, "asked for by " + by};
    if (word == "kvm") {
        Fd kvm = Fd::open("/dev/kvm", O_RDWR);
        return {Accel::Kvm, "asked for by " + by};
    }
    throw Error("unknown accelerator " + quoted(word) + " (from " + by + "); use auto, kvm or tcg");
}

std::string kernel_cmdline(const QemuConfig& c) {
    // panic=-1 reboots at once on a panic, and -no-reboot turns that into QEMU
    // exiting, so a panic ends the run instead of hanging it.
    std::string line = "console=ttyS0 panic=-1 oops=panic rdinit=/init";
    line += c.verbose ? " loglevel=7" : " quiet loglevel=1";
    // Before the user's words: after a "--" among them, words go to init as arguments.
    if (!c.job_word.empty()) line += " " + c.job_word;
    for (const auto& w : c.cmdline_extra) {
        // The console and ktstr's three channels are the four legacy serial ports.
        for (const char* limit : {"8250.nr_uarts=", "8250_core.nr_uarts="}) {
            if (w.rfind(limit, 0) == 0 && std::atoi(w.c_str() + std::strlen(limit)) < 4)
                throw Error("kernel word " + quoted(w) +
                            " leaves the guest fewer than the 4 serial ports ktstr uses (the "
                            "console and its control, stdout and stderr channels)");
        }
        // The kernel gives init the last of two same-named words: this one would replace the job.
        if (w.rfind(std::string(protocol::kJobWord) + "=", 0) == 0)
            throw Error("kernel word " + quoted(w.substr(0, 40)) + " is ktstr's own: " +
                        protocol::kJobWord + " carries the job to the guest's init");
        line += " " + w;
    }
    return line;
}

// Boot configuration: QEMU's default machine (pc) and -cpu max under TCG; bench/boot_config.sh
// compares q35, microvm (which needs its PIT, PIC and RTC), other CPU models and kernel words.
// Under KVM (-cpu host) the choice is unmeasured on the machines this was built on, which have
// no usable KVM.
std::vector<std::string> qemu_argv(const QemuConfig& c) {
    std::vector<std::string> a = {"qemu-system-x86_64", "-nodefaults", "-no-user-config",
                                  "-display",           "none",        "-no-reboot"};
    if (c.accel == Accel::Kvm) {
        a.insert(a.end(), {"-accel", "kvm", "-cpu", "host"});
    } else {
        // One TCG thread: multi-threaded TCG with several vCPUs sometimes
        // oopses in early boot (a text-patching race between vCPU threads).
        // KTSTR_TCG_THREAD=multi brings it back, for bench/reliability.sh.
        const char* thread = std::getenv("KTSTR_TCG_THREAD");
        bool multi = thread && std::string_view(thread) == "multi";
        a.insert(a.end(),
                 {"-accel", multi ? "tcg,thread=multi" : "tcg,thread=single", "-cpu", "max"});
    }
    // Each LLC is a QEMU socket (x86 CPUs share their L3 per socket); NUMA
    // nodes take whole sockets.
    const auto& t = c.topology;
    a.insert(a.end(), {"-smp", std::to_string(t.cpus()) + ",sockets=" + std::to_string(t.llcs) +
                                   ",cores=" + std::to_string(t.cores_per_llc) +
                                   ",threads=" + std::to_string(t.threads_per_core)});
    if (t.numa_nodes > 1) {
        int per_node = t.llcs / t.numa_nodes;
        for (int n = 0; n < t.numa_nodes; ++n) {
            auto mem = "mem" + std::to_string(n);
            int mb = c.memory_mb / t.numa_nodes;
            if (n == t.numa_nodes - 1) mb += c.memory_mb % t.numa_nodes;  // sizes must add up
            a.insert(a.end(), {"-object", "memory-backend-ram,id=" + mem +
                                              ",size=" + std::to_string(mb) + "M"});
            a.insert(a.end(), {"-numa", "node,nodeid=" + std::to_string(n) + ",memdev=" + mem});
            for (int s = n * per_node; s < (n + 1) * per_node; ++s)
                a.insert(a.end(), {"-numa", "cpu,node-id=" + std::to_string(n) +
                                                ",socket-id=" + std::to_string(s)});
        }
    }
    a.insert(a.end(), {"-m", std::to_string(c.memory_mb)});
    a.insert(a.end(), {"-kernel", c.kernel.string(), "-initrd", c.initramfs.string()});
    a.insert(a.end(), {"-append", kernel_cmdline(c)});
    // ktstr reads the console itself: it streams it, spots a panic as it is printed, and
    // relays an interactive shell's input only once the guest is ready to read it.
    a.insert(a.end(), {"-chardev", chardev_socket("con", c.console_socket)});
    a.insert(a.end(), {"-serial", "chardev:con"});
    // The guest's ports are the next three serial ports (ttyS1-3, see protocol.hpp). Any
    // virtio-pci device, virtio-serial included, costs about 0.4 s of boot under TCG (its
    // probe; bench/boot_config.sh has the row); a UART costs nothing the kernel does not
    // already do for ttyS0.
    for (const auto& [id, path] :
         {std::pair{"ctl", &c.control_socket}, std::pair{"out", &c.stdout_socket},
          std::pair{"err", &c.stderr_socket}}) {
        a.insert(a.end(),
                 {"-chardev", chardev_socket(id, *path), "-serial", std::string("chardev:") + id});
    }
    return a;
}

}  // namespace ktstr
