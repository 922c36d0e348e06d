// ktstr::run_main: a suite's command line. On the host it lists, selects and
// runs tests, one VM each; inside the guest it runs one test's body.
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <mutex>
#include <thread>

#include "host.hpp"
#include "ktstr/error.hpp"
#include "ktstr/fd.hpp"
#include "ktstr/log.hpp"
#include "ktstr/run_phases.hpp"
#include "ktstr/vm_run.hpp"
#include "suite.hpp"

namespace ktstr {
namespace {

using namespace suite;
using Clock = std::chrono::steady_clock;

constexpr const char* kHelp = R"(usage: {0} [options]

Runs this suite's KTSTR_TESTs, each in its own freshly booted VM.

options:
  --list             list the tests (with --filter/--exact/--shard: the selection)
  --filter GLOB      run the tests whose names match GLOB (shell wildcards)
  --exact NAME       run the test named NAME
  -j, --jobs N       host threads the running VMs may use (default: the host's
                     cores); a VM costs one under TCG, one per vCPU under KVM
  --oversubscribe    let -j count VMs, however many vCPUs each has
  --compress none|gzip|lz4|zstd  compress the initramfs (default: none)
  --shard I/N        run slice I of N (0 <= I < N); every test is in exactly one
  --kernel PATH      kernel image (default: $KTSTR_KERNEL, the kernel cache, /boot)
  --accel auto|kvm|tcg  accelerator (default: $KTSTR_ACCEL, else auto)
  --junit FILE       write JUnit XML to FILE
  -v, --verbose      say what happens, with each VM's full kernel log
  -h, --help         this text

Exit code: 0 when every selected test passed or was skipped, 1 otherwise.
)";

int parse_int(const std::string& flag, const std::string& text) {
    try {
        size_t used = 0;
        int v = std::stoi(text, &used);
        if (used == text.size() && v >= 0) return v;
    } catch (const std::exception&) {
    }
    throw Error("option " + flag + " wants a whole number, not " + quoted(text));
}

HostOptions parse_host_options(const std::vector<std::string>& args) {
    HostOptions o;
    o.jobs = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    for (size_t i = 0; i < args.size(); ++i) {
        const auto& a = args[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= args.size()) throw Error("option " + a + " needs a value");
            return args[++i];
        };
        if (a == "--list")
            o.list = true;
        else if (a == "--filter")
            o.filter = value();
        else if (a == "--exact")
            o.exact = value();
        else if (a == "-j" || a == "--jobs")
            o.jobs = std::max(1, parse_int(a, value()));
        else if (a == "--kernel")
            o.kernel = value();
        else if (a == "--accel")
            o.accel = value();
        else if (a == "--junit")
            o.junit = value();
        else if (a == "-v" || a == "--verbose")
            o.verbose = true;
        else if (a == "--oversubscribe")
            o.oversubscribe = true;
        else if (a == "--compress")
            o.compression = parse_compression(value(), a);
        else if (a == "--shard") {
            auto v = value();
            auto slash = v.find('/');
            if (slash == std::string::npos)
                throw Error("option --shard wants I/N, not " + quoted(v));
            o.shard_index = parse_int(a, v.substr(0, slash));
            o.shard_count = parse_int(a, v.substr(slash + 1));
            if (o.shard_count < 1 || o.shard_index >= o.shard_count)
                throw Error("option --shard wants 0 <= I < N, not " + quoted(v));
        } else {
            throw Error("unknown option " + quoted(a) + " (see --help)");
        }
    }
    return o;
}

// Blocks the stopping signals in every thread, and turns them into one
// readable eventfd that every running VM watches.
class Cancellation {
  public:
    Cancellation() : set_(stop_signals()) {
        ::pthread_sigmask(SIG_BLOCK, &set_, nullptr);
        signals_.reset(::signalfd(-1, &set_, SFD_CLOEXEC | SFD_NONBLOCK));
        cancel_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
        if (!signals_ || !cancel_) throw_errno("cannot set up signal handling");
    }
    int cancel_fd() const { return cancel_.get(); }
    // Waits up to `ms` for a signal; on one, cancels every VM.
    bool poll_signal(int ms) {
        pollfd p{signals_.get(), POLLIN, 0};
        if (::poll(&p, 1, ms) <= 0) return false;
        signalfd_siginfo si{};
        if (::read(signals_.get(), &si, sizeof si) <= 0) return false;
        uint64_t one = 1;
        if (::write(cancel_.get(), &one, sizeof one) < 0) {
        }
        return true;
    }

  private:
    sigset_t set_{};
    Fd signals_, cancel_;
};

int run_host(const HostOptions& o, const char* argv0) {
    if (o.verbose) log_threshold() = LogLevel::Debug;
    auto tests = select_tests(o);
    if (o.list) {
        for (auto t : tests) fmt::print("{}\n", t->name);
        return 0;
    }
    if (tests.empty()) {
        log(LogLevel::Error, "no test matches the selection (see --list)");
        return 1;
    }
    auto kernel = choose_kernel(o.kernel);
    auto accel = choose_accel(o.accel);
    log(LogLevel::Info, "accel {}: {}; kernel {}", accel.accel == Accel::Kvm ? "kvm" : "tcg",
        accel.reason, kernel.version.empty() ? kernel.image.string() : kernel.version);

    Cancellation cancel;
    bool tty = ::isatty(2);
    size_t done = 0;
    auto t0 = Clock::now();
    std::mutex m;
    auto on_done = [&](const TestOutcome& r) {
        std::lock_guard lock(m);
        ++done;
        if (tty) fmt::print(stderr, "\r\033[K");
        fmt::print(stderr, "{:5} {} [{}] ({:.1f} s)\n", status_name(r.status), r.test->name,
                   scheduler_shown(r), r.seconds);
        // -v: every test's report, with the whole kernel log (the help promises it).
        if (r.status == Status::Fail || r.status == Status::Error || o.verbose)
            fmt::print(stderr, "{}", failure_report(r, o.verbose));
        if (r.status == Status::Skip && !r.messages.empty())
            fmt::print(stderr, "  skipped: {}\n", r.messages.front());
        if (auto phases = run_phases(r.ms_pack, r.vm))
            log(LogLevel::Debug, "{}: phases: {}", r.test->name, format_phases(*phases));
    };
    std::vector<TestOutcome> results;
    std::atomic<bool> finished{false};
    std::thread runner([&] {
        results = run_tests(tests, o, kernel, accel, cancel.cancel_fd(), on_done);
        finished = true;
    });
    bool interrupted = false;
    while (!finished) {
        interrupted |= cancel.poll_signal(tty ? 1000 : 200);
        if (tty && !finished) {
            std::lock_guard lock(m);
            auto secs = std::chrono::duration<double>(Clock::now() - t0).count();
            fmt::print(stderr, "\r\033[K[{}/{} done, {:.0f} s]", done, tests.size(), secs);
        }
    }
    runner.join();
    if (tty) fmt::print(stderr, "\r\033[K");

    int counts[4] = {};
    for (const auto& r : results) counts[int(r.status)]++;
    fmt::print(stderr, "{} passed, {} failed, {} skipped, {} errors in {:.1f} s{}\n", counts[0],
               counts[1], counts[2], counts[3],
               std::chrono::duration<double>(Clock::now() - t0).count(),
               interrupted ? " (interrupted)" : "");
    if (!o.junit.empty()) {
        std::ofstream out(o.junit);
        out << junit_xml(results, std::filesystem::path(argv0).filename().string());
        if (!out) throw Error("cannot write JUnit XML to " + quoted(o.junit));
    }
    return counts[1] + counts[3] == 0 && !interrupted ? 0 : 1;
}

}  // namespace

int run_main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    try {
        if (args.size() == 2 && args[0] == "--ktstr-guest-test")
            return suite::run_in_guest(args[1]);
        for (const auto& a : args)
            if (a == "-h" || a == "--help") return fmt::print(kHelp, argv[0]), 0;
        return run_host(parse_host_options(args), argv[0]);
    } catch (const std::exception& e) {
        log(LogLevel::Error, "{}", e.what());
        return 2;
    }
}

}  // namespace ktstr
