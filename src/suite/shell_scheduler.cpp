#include "shell_scheduler.hpp"

#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "host.hpp"
#include "ktstr/error.hpp"
#include "ktstr/log.hpp"
#include "suite.hpp"

namespace fs = std::filesystem;

namespace ktstr::suite {
namespace {

// The scheduler's args live in a Scheduler's Words.
constexpr size_t kMaxSchedulerArgs = Words::capacity();

fs::path this_binary() {
    return fs::read_symlink("/proc/self/exe");
}

}  // namespace

std::vector<IncludeSpec> shell_scheduler_includes(const ShellScheduler& s) {
    if (!fs::is_regular_file(s.path))
        throw Error("cannot find scheduler " + quoted(s.path) + " (from --scheduler)");
    if (::access(s.path.c_str(), X_OK) != 0)
        throw Error("scheduler " + quoted(s.path) + " (from --scheduler) is not executable");
    if (s.args.size() > kMaxSchedulerArgs)
        throw Error("too many --scheduler-arg: at most " + std::to_string(kMaxSchedulerArgs));
    return {{this_binary().string(), "ktstr's guest half, for --scheduler"},
            {s.path, "--scheduler"}};
}

std::string shell_scheduler_command(const ShellScheduler& s, const std::string& command,
                                    bool verbose) {
    std::string c = shell_quote(guest_binary_path(this_binary().string())) + " " +
                    std::string(kGuestSchedulerCommand) + (verbose ? " -v " : " ") +
                    shell_quote(fs::path(s.path).filename().string());
    for (const auto& a : s.args) c += " --arg " + shell_quote(a);
    return c + " -- " + shell_quote(command);
}

int run_guest_scheduler(const std::vector<std::string>& args) {
    std::string binary, command;
    std::vector<std::string> scheduler_args;
    size_t i = 0;
    for (; i < args.size() && args[i] != "--"; ++i) {
        if (args[i] == "-v")
            log_threshold() = LogLevel::Debug;
        else if (args[i] == "--arg" && i + 1 < args.size())
            scheduler_args.push_back(args[++i]);
        else if (binary.empty())
            binary = args[i];
        else
            throw Error("guest scheduler: unexpected argument " + quoted(args[i]));
    }
    if (binary.empty() || i + 2 != args.size())
        throw Error("guest scheduler: wants [-v] BINARY [--arg A]... -- COMMAND");
    command = args[i + 1];

    // Unnamed: whatever ops name the kernel attaches counts.
    Scheduler s{.spec = SchedulerSpec::path(binary)};
    for (const auto& a : scheduler_args) s.args.push_back(a);
    auto run = run_guarded(&s, 0, [&command](int) {
        ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
        std::fprintf(stderr, "ktstr: cannot run /bin/sh: %s\n", std::strerror(errno));
        ::_exit(127);
    });

    if (run.skipped) {
        log(LogLevel::Error, "{}", *run.skipped);
        return kSchedulerFailedExit;
    }
    for (const auto& p : run.problems) log(LogLevel::Error, "{}", p);
    if (!run.problems.empty()) {
        if (run.body_exit)
            log(LogLevel::Error, "the command {} (ktstr exits {}: the scheduler failed)",
                run.body_exit->describe(), kSchedulerFailedExit);
        return kSchedulerFailedExit;
    }
    log(LogLevel::Debug, "scheduler '{}' ran the command and stopped cleanly", run.scheduler);
    if (!run.body_exit) return kSchedulerFailedExit;  // not reached: an unended body is a problem
    const auto& exit = *run.body_exit;
    return exit.exit_code ? *exit.exit_code : 128 + exit.signal.value_or(0);
}

}  // namespace ktstr::suite
