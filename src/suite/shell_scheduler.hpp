// `ktstr shell --scheduler PATH [--scheduler-arg A]...`: the command runs under a sched_ext
// scheduler, with the lifecycle checks of a suite (attached, not ejected, stopped cleanly, the
// kernel unharmed). The host packs ktstr itself and the scheduler; inside the guest, ktstr's
// guest half starts the scheduler, runs the command under it and says what went wrong.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "ktstr/include_files.hpp"

namespace ktstr::suite {

struct ShellScheduler {
    std::string path;               // the scheduler binary on the host
    std::vector<std::string> args;  // passed to it
};

// The guest half's first argument, after the packed ktstr binary.
inline constexpr std::string_view kGuestSchedulerCommand = "--ktstr-guest-scheduler";
// ktstr shell's exit code when the scheduler failed: it did not attach, died, was ejected,
// ignored its stop, or the kernel warned or became tainted.
inline constexpr int kSchedulerFailedExit = 123;

// Checks the scheduler (it exists; not too many args) and says what to pack for it: this
// ktstr binary (the guest half) and the scheduler binary.
std::vector<IncludeSpec> shell_scheduler_includes(const ShellScheduler& s);

// The guest's command line: the guest half, which runs `command` with `sh -c` under the
// scheduler.
std::string shell_scheduler_command(const ShellScheduler& s, const std::string& command,
                                    bool verbose);

// The guest half: `args` are what follows kGuestSchedulerCommand. Returns the command's exit
// code (128+N for signal N), or kSchedulerFailedExit with the reasons on stderr.
int run_guest_scheduler(const std::vector<std::string>& args);

}  // namespace ktstr::suite
