// The ktstr command: boot a kernel with host binaries packed in, and run a
// command or a shell inside it.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/ranges.h>

#include "../suite/shell_scheduler.hpp"
#include "ktstr/elf_closure.hpp"
#include "ktstr/error.hpp"
#include "ktstr/fd.hpp"
#include "ktstr/guest_image.hpp"
#include "ktstr/include_files.hpp"
#include "ktstr/initramfs.hpp"
#include "ktstr/initramfs_cache.hpp"
#include "ktstr/kernel.hpp"
#include "ktstr/log.hpp"
#include "ktstr/pvh_image.hpp"
#include "ktstr/run_phases.hpp"
#include "ktstr/temp_dir.hpp"
#include "ktstr/vm_run.hpp"

namespace fs = std::filesystem;
using namespace ktstr;

int interrupted_exit_code();

namespace {

constexpr const char* kMainHelp = R"(usage: ktstr <command> [options]

Boot a Linux kernel in QEMU with host binaries packed into its initramfs, and
run a command or a shell inside it.

commands:
  shell        boot a VM and run --exec CMD in it, or an interactive shell
  initramfs    write the initramfs that `shell` would boot, or --list it
  kernel list  show the kernels ktstr can find
  cache clean  empty the initramfs cache and the unpacked kernels, and remove
               the temp dirs of ktstr runs that were killed

Run `ktstr <command> --help` for a command's options.
)";

constexpr const char* kShellHelp = R"(usage: ktstr shell [options]

Boots a kernel with the include files and their shared libraries packed in.
With --exec, runs CMD with `sh -c` and exits with its exit code (128+N when
signal N ended it, 124 on timeout, 125 when the VM itself failed or an option
was wrong, 123 when the --scheduler failed; 130, 143 or 129 when SIGINT,
SIGTERM or SIGHUP stopped ktstr). Without --exec, runs a busybox
shell and exits with its status:
  - on a terminal: the shell is on the console, the terminal in raw mode
    (Ctrl-C goes to the guest; leave with `exit` or Ctrl-D); until the
    shell runs, nothing typed is echoed and Ctrl-C stops ktstr;
  - with input from a pipe or file: the shell reads it as a script (like
    `sh -s`: no prompt, no echo; output on stdout and stderr) and ends at
    its end, which every later read of the input sees too, as with a
    pipe. A ^D byte in the input ends it too. --timeout applies as for
    --exec.
Input typed or piped before the guest is ready waits until it is.
stdout and stderr must be open (use >/dev/null to discard output).

options (a long option takes its value as the next word or after '=',
as in --timeout=5):
  -i, --include-files SPEC  a file or directory to pack (repeatable). A path
                            (absolute, relative, or containing '/') must
                            exist; a bare name is searched on the host PATH;
                            a directory keeps its structure. Each lands under
                            /include-files, which is on the guest's PATH.
  --exec CMD                run CMD in the guest instead of a shell
  --scheduler PATH          start this sched_ext scheduler before CMD and stop
                            it after; it must attach, stay attached and stop
                            on SIGTERM, and the kernel must not warn or become
                            tainted (else the reasons, and exit code 123)
  --scheduler-arg A         pass A to the scheduler (repeatable)
  --kernel PATH             kernel image (or a directory holding vmlinuz);
                            default: $KTSTR_KERNEL, then the kernel cache,
                            then /boot (see `ktstr kernel list`). A kernel
                            with a PVH entry (CONFIG_PVH) boots through it:
                            its ELF is unpacked once into the cache, which
                            skips the emulated decompressor (3 s under TCG);
                            KTSTR_KERNEL_ENTRY=bzimage boots the image as is,
                            =pvh fails when PVH cannot be used. An empty,
                            truncated or damaged kernel is refused
  --accel auto|kvm|tcg      accelerator (default: $KTSTR_ACCEL, else auto)
  --cpus N                  vCPUs, 1 to 255 (default 2)
  --memory MB               guest memory, 128 to the host's RAM (default:
                            512 + 3x the initramfs)
  --timeout S               kill CMD (or the shell) after S seconds, up to
                            604800 (default 600, 0: none; a shell on a
                            terminal has none unless --timeout is given)
  --boot-timeout S          fail when the guest has not started in S seconds
                            (default, and 0: 120 under TCG, 30 under KVM,
                            plus the time to unpack the initramfs: 1 s per
                            5 MB under TCG, per 50 MB under KVM)
  --cmdline WORD            append WORD to the kernel command line (repeatable)
  --compress none|gzip|lz4|zstd
                            compress the initramfs (default: none; under TCG
                            the guest's decompression costs more than it saves)
  --no-cache                write the initramfs afresh into a temp dir instead
                            of using the initramfs cache (see `ktstr cache`)
  -v, --verbose             say what happens, and stream the kernel log to
                            stderr as the guest prints it
  -h, --help                this text
)";

constexpr const char* kCacheHelp = R"(usage: ktstr cache clean

Empties the initramfs cache and the kernels unpacked for the PVH entry (both
under $KTSTR_CACHE_DIR, else ~/.cache/ktstr; an archive a run is booting, or a
file a run is writing, stays), and removes from $TMPDIR (else
/tmp) the temp dirs that ktstr runs left when they could not clean up (killed
with SIGKILL, crashed, or the machine lost power): sockets, the QEMU log, and
with --no-cache an initramfs. Only this user's directories that ktstr made and
whose run has ended go; a run still alive keeps its own. Each `ktstr shell`,
`ktstr initramfs` and test suite run removes them too, when it starts.
)";

constexpr const char* kInitramfsHelp = R"(usage: ktstr initramfs [-i SPEC]... (-o FILE | --list)

Writes the initramfs `ktstr shell` would boot with the same -i arguments.
A long option takes its value as the next word or after '=' (--output=FILE).
  -i, --include-files SPEC  as for `ktstr shell`
  -o, --output FILE         where to write it (newc cpio, uncompressed)
  --kernel PATH             the kernel it is for (its config is packed too)
  --list                    print the layout: archive path, host source, size,
                            and why each entry is there
)";

// The words after the command. Long options take their value as the next word or after
// '=' (--timeout=5); short ones as the next word.
struct Args {
    std::vector<std::string> words;
    size_t pos = 0;
    std::optional<std::string> inline_value;  // the part after '=' of the current option

    bool done() const { return pos >= words.size(); }
    const std::string& peek() const { return words[pos]; }
    // Takes the next option, and returns its name.
    std::string option() {
        const auto& w = words[pos++];
        inline_value.reset();
        auto eq = w.find('=');
        if (w.rfind("--", 0) != 0 || eq == std::string::npos) return w;
        inline_value = w.substr(eq + 1);
        return w.substr(0, eq);
    }
    std::string value(const std::string& flag) {
        if (inline_value) return *std::exchange(inline_value, std::nullopt);
        if (done()) throw Error("option " + flag + " needs a value");
        return words[pos++];
    }
    // A path: an empty word (an unset variable, `--kernel "$K"`) is an error, never "not given".
    std::string path_value(const std::string& flag) {
        auto v = value(flag);
        if (v.empty()) throw Error("option " + flag + " needs a path, not an empty word");
        return v;
    }
    // For an option that takes none: `--list=yes` is an error, not silently --list.
    bool set(const std::string& flag) const {
        if (inline_value) throw Error("option " + flag + " takes no value");
        return true;
    }
};

// The largest values ktstr takes: QEMU's pc machine stops at 255 vCPUs; a week keeps every
// deadline (in ms) well inside an int.
constexpr long kMaxCpus = 255;
constexpr double kMaxSeconds = 7 * 24 * 3600;

long host_memory_mb() {
    return long(::sysconf(_SC_PHYS_PAGES) / 1024 * ::sysconf(_SC_PAGE_SIZE) / 1024);
}

// A whole number from lo to hi, in plain decimal digits; `limit` says where hi comes from.
int parse_count(const std::string& flag, const std::string& text, long lo, long hi,
                const std::string& what, const std::string& limit) {
    bool digits = !text.empty() && text.size() <= 9 &&
                  text.find_first_not_of("0123456789") == std::string::npos;
    if (digits && std::stol(text) >= lo && std::stol(text) <= hi) return int(std::stol(text));
    throw Error(fmt::format("option {} wants a whole number {} from {} to {} ({}), not {}", flag,
                            what, lo, hi, limit, quoted(text)));
}

// Seconds as plain decimal digits (a fraction allowed), from 0 to a week.
double parse_seconds(const std::string& flag, const std::string& text) {
    auto dot = text.find('.');
    auto whole = text.substr(0, dot);
    auto frac = dot == std::string::npos ? "" : text.substr(dot + 1);
    auto is_digits = [](const std::string& t) {
        return t.find_first_not_of("0123456789") == std::string::npos;
    };
    bool plain = !whole.empty() && whole.size() <= 9 && is_digits(whole) && is_digits(frac) &&
                 (dot == std::string::npos || !frac.empty());
    if (plain && std::stod(text) <= kMaxSeconds) return std::stod(text);
    throw Error(fmt::format("option {} wants seconds from 0 to {:.0f} (a week), not {}", flag,
                            kMaxSeconds, quoted(text)));
}

int cmd_initramfs(Args& args) {
    std::vector<IncludeSpec> specs;
    std::string out, kernel;
    bool list = false;
    while (!args.done()) {
        const auto a = args.option();
        if (a == "-h" || a == "--help") return fmt::print("{}", kInitramfsHelp), 0;
        if (a == "-i" || a == "--include-files")
            specs.push_back({args.value(a), "-i"});
        else if (a == "-o" || a == "--output")
            out = args.path_value(a);
        else if (a == "--list")
            list = args.set(a);
        else if (a == "--kernel")
            kernel = args.path_value(a);
        else
            throw Error("unknown option " + quoted(a) + " for `ktstr initramfs` (see --help)");
    }
    if (out.empty() && !list) throw Error("`ktstr initramfs` needs -o FILE or --list");
    sweep_stale_temp_dirs_once();
    auto entries = guest_layout(specs, choose_kernel(kernel));
    if (list) fmt::print("{}", format_layout(entries));
    if (!out.empty()) {
        struct stat st {};
        if (::lstat(out.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
            throw Error("refusing to write initramfs to " + quoted(out) +
                        ": it exists and is not a regular file");
        write_initramfs(entries, out);
    }
    return 0;
}

int cmd_cache(Args& args) {
    auto help = [&] { return !args.done() && (args.peek() == "-h" || args.peek() == "--help"); };
    if (help()) return fmt::print("{}", kCacheHelp), 0;
    if (args.done() || args.peek() != "clean") throw Error("usage: ktstr cache clean");
    ++args.pos;
    if (help()) return fmt::print("{}", kCacheHelp), 0;
    if (!args.done())  // a typo or a guessed --dry-run must not empty the cache
        throw Error("unknown option " + quoted(args.peek()) +
                    " for `ktstr cache clean` (it takes none; see --help)");
    auto freed = clean_initramfs_cache();
    fmt::print("removed {} MB from {}\n", freed >> 20, initramfs_cache_dir().string());
    freed = clean_pvh_cache(pvh_cache_dir());
    fmt::print("removed {} MB from {}\n", freed >> 20, pvh_cache_dir().string());
    std::error_code no_tmp;
    auto tmp = fs::temp_directory_path(no_tmp);
    if (no_tmp) return 0;  // no $TMPDIR, so nothing left in it
    auto n = sweep_stale_temp_dirs(tmp).removed.size();
    fmt::print("removed {} temp dir{} left by ended runs from {}\n", n, n == 1 ? "" : "s",
               tmp.string());
    return 0;  // a directory that stays is a warning, named above
}

void print_kernel(const KernelInfo& k, bool chosen) {
    const char* scx = !k.sched_ext ? "unknown (no config beside it)" : *k.sched_ext ? "yes" : "no";
    fmt::print("{}{}\n  version: {}\n  sched_ext: {}\n  found by: {}\n", k.image.string(),
               chosen ? "  (chosen: `ktstr shell` boots this one)" : "",
               k.version.empty() ? "?" : k.version, scx, k.found_by);
}

// Every kernel found, the one named by --kernel or $KTSTR_KERNEL first, with the one
// `ktstr shell` would boot (given the same --kernel) marked.
int cmd_kernel(Args& args) {
    if (!args.done() && (args.peek() == "-h" || args.peek() == "--help"))
        return fmt::print(
                   "usage: ktstr kernel list [--kernel PATH]\n\nLists the kernels ktstr "
                   "can find, in the order it prefers them (--kernel,\nthen $KTSTR_KERNEL, "
                   "then the cache, /boot and /usr/lib/modules), with their\nversion and "
                   "whether they have sched_ext, and marks the one `ktstr shell`\nwould "
                   "boot.\n"),
               0;
    if (args.done() || args.option() != "list")
        throw Error("usage: ktstr kernel list [--kernel PATH]");
    std::string explicit_kernel;
    while (!args.done()) {
        const auto a = args.option();
        if (a == "--kernel")
            explicit_kernel = args.path_value(a);
        else
            throw Error("unknown option " + quoted(a) + " for `ktstr kernel list` (see --help)");
    }

    std::optional<KernelInfo> chosen;
    std::string not_chosen;
    try {
        chosen = choose_kernel(explicit_kernel);
    } catch (const Error& e) {
        not_chosen = e.what();
    }
    std::vector<KernelInfo> kernels;
    if (chosen) kernels.push_back(*chosen);
    std::error_code ec;
    for (auto& k : find_kernels()) {
        bool seen = std::any_of(kernels.begin(), kernels.end(), [&](const KernelInfo& o) {
            return fs::equivalent(o.image, k.image, ec);
        });
        if (!seen) kernels.push_back(std::move(k));
    }
    for (const auto& k : kernels) print_kernel(k, chosen && k.image == chosen->image);
    if (chosen) return 0;
    if (kernels.empty()) fmt::print("no kernels found\n");
    log(LogLevel::Error, "{}", not_chosen);
    return 1;
}

struct ShellOptions {
    std::vector<IncludeSpec> specs;
    std::optional<std::string> exec;
    std::string kernel, accel;
    int cpus = 2, memory_mb = 0;
    std::optional<double> timeout_s;  // unset: 600 s, or none for a shell on a terminal
    double boot_timeout_s = 0;
    std::vector<std::string> cmdline;
    bool verbose = false;
    bool cache = true;
    std::optional<std::string> scheduler;
    std::vector<std::string> scheduler_args;
    std::optional<Compression> compression;  // unset: the accelerator's default
};

ShellOptions parse_shell(Args& args) {
    ShellOptions o;
    while (!args.done()) {
        const auto a = args.option();
        if (a == "-h" || a == "--help") fmt::print("{}", kShellHelp), std::exit(0);
        if (a == "-i" || a == "--include-files")
            o.specs.push_back({args.value(a), "-i"});
        else if (a == "--exec")
            o.exec = args.value(a);
        else if (a == "--scheduler")
            o.scheduler = args.value(a);
        else if (a == "--scheduler-arg")
            o.scheduler_args.push_back(args.value(a));
        else if (a == "--kernel")
            o.kernel = args.path_value(a);
        else if (a == "--accel")
            o.accel = args.value(a);
        else if (a == "--cpus")
            o.cpus = parse_count(a, args.value(a), 1, kMaxCpus, "of vCPUs", "QEMU's pc machine");
        else if (a == "--memory")
            o.memory_mb =
                parse_count(a, args.value(a), 128, host_memory_mb(), "of MB", "the host's RAM");
        else if (a == "--timeout")
            o.timeout_s = parse_seconds(a, args.value(a));
        else if (a == "--boot-timeout")
            o.boot_timeout_s = parse_seconds(a, args.value(a));
        else if (a == "--cmdline")
            o.cmdline.push_back(args.value(a));
        else if (a == "-v" || a == "--verbose")
            o.verbose = args.set(a);
        else if (a == "--no-cache")
            o.cache = !args.set(a);
        else if (a == "--compress")
            o.compression = parse_compression(args.value(a), a);
        else
            throw Error("unknown option " + quoted(a) + " for `ktstr shell` (see --help)");
    }
    if (!o.scheduler && !o.scheduler_args.empty())
        throw Error("option --scheduler-arg needs --scheduler");
    // Not yet: an interactive shell under a scheduler (the guest half runs one command).
    if (o.scheduler && !o.exec) throw Error("option --scheduler needs --exec");
    return o;
}

// Which of stdin, stdout and stderr main() found closed (and put /dev/null on, so that no
// file ktstr opens lands there and gets the guest's output).
bool std_fd_was_closed[3] = {};

// The guest's output must have somewhere to go: a closed or read-only stdout or stderr is an
// error before boot, not output lost without a word.
void require_outputs() {
    for (int fd : {1, 2}) {
        const char* name = fd == 1 ? "stdout" : "stderr";
        int flags = ::fcntl(fd, F_GETFL);
        if (std_fd_was_closed[fd] || flags < 0)
            throw Error(
                fmt::format("{} is closed, so the guest's output has nowhere to go; "
                            "redirect it (to /dev/null to discard it)",
                            name));
        if ((flags & O_ACCMODE) == O_RDONLY)
            throw Error(
                fmt::format("{} is open read-only, so the guest's output has nowhere to "
                            "go; redirect it (to /dev/null to discard it)",
                            name));
    }
}

int cmd_shell(Args& args) {
    auto o = parse_shell(args);
    if (o.verbose) log_threshold() = LogLevel::Debug;
    require_outputs();
    sweep_stale_temp_dirs_once();
    // Quiet from here: what the user types while ktstr packs and the guest boots is echoed
    // once, by the guest's shell.
    std::optional<GuestTerminal> terminal_settings;
    if (!o.exec && ::isatty(0)) terminal_settings.emplace(0);

    // Everything that can fail on bad input fails here, before any boot.
    VmSpec spec;
    spec.terminal = terminal_settings ? &*terminal_settings : nullptr;
    spec.kernel = choose_kernel(o.kernel);
    if (o.scheduler && spec.kernel.sched_ext == false) {
        log(LogLevel::Error,
            "kernel {} has no sched_ext (its config has no CONFIG_SCHED_CLASS_EXT=y), so "
            "--scheduler {} cannot run on it; `ktstr kernel list` shows which kernels have it",
            spec.kernel.image.string(), *o.scheduler);
        return suite::kSchedulerFailedExit;
    }
    spec.accel = choose_accel(o.accel);
    auto t_pack = std::chrono::steady_clock::now();
    std::optional<TempDir> dir;
    std::optional<suite::ShellScheduler> scheduler;
    if (o.scheduler) {
        scheduler = suite::ShellScheduler{*o.scheduler, o.scheduler_args};
        auto more = suite::shell_scheduler_includes(*scheduler);
        o.specs.insert(o.specs.end(), more.begin(), more.end());
    }
    auto layout = guest_layout(o.specs, spec.kernel);
    auto compression = o.compression.value_or(default_compression(spec.accel.accel));
    std::uintmax_t unpacked_bytes = 0;
    std::optional<CachedInitramfs> cached;  // held in use, so no trim takes it, until the end
    if (o.cache) {
        cached = cached_initramfs(layout, initramfs_cache_dir(), compression);
        spec.initramfs = cached->path;
        unpacked_bytes = cached->unpacked_bytes;
        log(LogLevel::Debug, "initramfs {} ({})", cached->path.string(),
            cached->hit ? "cached" : "written");
    } else {
        dir.emplace("ktstr-shell");
        spec.initramfs = dir->path() / "initramfs.cpio";
        write_initramfs(layout, spec.initramfs);
        unpacked_bytes = fs::file_size(spec.initramfs);
        if (compression != Compression::None) {
            auto packed = spec.initramfs;
            packed += compression_suffix(compression);
            compress_initramfs(spec.initramfs, packed, compression);
            spec.initramfs = packed;
        }
    }
    auto ms_pack =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_pack)
            .count();

    log(LogLevel::Info, "accel {}: {}", spec.accel.accel == Accel::Kvm ? "kvm" : "tcg",
        spec.accel.reason);
    log(LogLevel::Debug, "kernel {} ({}, found by {})", spec.kernel.image.string(),
        spec.kernel.version, spec.kernel.found_by);
    spec.topology.cores_per_llc = o.cpus;
    spec.memory_mb = o.memory_mb ? o.memory_mb : memory_for_initramfs(unpacked_bytes);
    if (spec.memory_mb > host_memory_mb())
        throw Error(
            fmt::format("the guest would need {} MB (512 + 3x the {} MB initramfs), more "
                        "than the host's {} MB of RAM; pass a smaller --memory",
                        spec.memory_mb, unpacked_bytes >> 20, host_memory_mb()));
    spec.cmdline_extra = o.cmdline;
    spec.boot_timeout_s = o.boot_timeout_s;
    spec.verbose = o.verbose;
    // Interactive: a terminal gets the console itself; other input is read as a script, with
    // the output on stdout and stderr like --exec. -v streams the console to stderr.
    bool terminal = !o.exec && ::isatty(0);
    if (!o.exec) spec.input_fd = 0;
    spec.console_fd = terminal ? 1 : o.verbose ? 2 : -1;

    protocol::Job job;
    job.command = scheduler ? suite::shell_scheduler_command(*scheduler, *o.exec, o.verbose)
                            : o.exec.value_or("");
    job.interactive = !o.exec;
    job.script_input = !o.exec && !terminal;
    // A shell on the user's terminal runs as long as the user types, unless told otherwise.
    job.timeout_s = o.timeout_s.value_or(terminal ? 0 : 600);
    job.verbose = o.verbose;
    job.path = guest_path(layout);
    if (int rc = interrupted_exit_code()) return rc;  // stopped while packing: no VM at all
    auto r = run_vm(spec, job);

    if (r.boot_attempts > 1) log(LogLevel::Warn, "the kernel panicked in early boot; retried once");
    if (r.outcome != Outcome::Verdict) {
        log(LogLevel::Error, "{}: {}", outcome_name(r.outcome), r.reason);
        if (spec.console_fd < 0 && !r.console_tail.empty())
            fmt::print(stderr, "--- console tail ---\n{}\n", r.console_tail);
    } else if (!r.verdict.error.empty()) {
        log(LogLevel::Error, "guest: {}", r.verdict.error);
    } else if (r.verdict.timed_out) {
        log(LogLevel::Error, "command timed out after {:g} s and was killed", job.timeout_s);
    } else if (r.verdict.signal) {
        log(LogLevel::Error, "command killed by signal {} ({})", *r.verdict.signal,
            strsignal(*r.verdict.signal));
    } else if (!scheduler && (r.verdict.exit_code == 124 || r.verdict.exit_code == 125)) {
        // The codes ktstr gives a timeout and a VM failure, which always come with a reason.
        log(LogLevel::Warn, "the command itself exited {} (no timeout, no VM failure)",
            *r.verdict.exit_code);
    }
    if (auto phases = run_phases(ms_pack, r))
        log(LogLevel::Debug, "phases: {}", format_phases(*phases));
    if (const auto& left = r.verdict.leftover; !left.empty())
        log(LogLevel::Warn, "{} {} still running when the command ended and had to be killed: {}",
            left.size(), left.size() == 1 ? "process was" : "processes were",
            fmt::join(left, ", "));
    return r.exit_code();
}

}  // namespace

// SIGINT, SIGTERM and SIGHUP stay blocked from the start: a running VM reads
// them from a signalfd and cleans up; before or after one, they are checked
// once the current step is done, so no temp file is ever left behind.
int interrupted_exit_code() {
    sigset_t pending, stop = stop_signals();
    sigpending(&pending);
    for (int s = 1; s < NSIG; ++s)
        if (sigismember(&stop, s) == 1 && sigismember(&pending, s) == 1) return 128 + s;
    return 0;
}

int main(int argc, char** argv) {
    // Inside the guest, for --scheduler: before the signals are blocked, which its children
    // (the scheduler, the command) would inherit.
    if (argc > 1 && argv[1] == ktstr::suite::kGuestSchedulerCommand) {
        try {
            return ktstr::suite::run_guest_scheduler({argv + 2, argv + argc});
        } catch (const std::exception& e) {
            log(LogLevel::Error, "{}", e.what());
            return ktstr::suite::kSchedulerFailedExit;
        }
    }
    for (int fd = 0; fd < 3; ++fd) {
        if (::fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
            std_fd_was_closed[fd] = true;
            ::open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);  // lands on fd, the lowest free
        }
    }
    ::signal(SIGPIPE, SIG_IGN);
    sigset_t stop = stop_signals();
    ::sigprocmask(SIG_BLOCK, &stop, nullptr);
    Args args;
    args.words.assign(argv + 1, argv + argc);
    try {
        if (args.done() || args.peek() == "-h" || args.peek() == "--help") {
            fmt::print("{}", kMainHelp);
            return args.done() ? 2 : 0;
        }
        auto cmd = args.peek();
        ++args.pos;
        if (cmd == "shell") {
            int rc = cmd_shell(args);
            return interrupted_exit_code() ? interrupted_exit_code() : rc;
        }
        if (cmd == "initramfs") {
            int rc = cmd_initramfs(args);
            return interrupted_exit_code() ? interrupted_exit_code() : rc;
        }
        if (cmd == "kernel") return cmd_kernel(args);
        if (cmd == "cache") return cmd_cache(args);
        throw Error("unknown command " + quoted(cmd) + " (see ktstr --help)");
    } catch (const std::exception& e) {
        log(LogLevel::Error, "{}", e.what());
        return 125;
    }
}
