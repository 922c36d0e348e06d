// A payload's child process: the program it runs (found on PATH, or one of busybox's
// applets in the guest), its environment, and its set-up between fork and exec, which
// reports the step that failed to the parent over a close-on-exec pipe.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ktstr/fd.hpp"

namespace ktstr {

using Environment = std::map<std::string, std::string>;

// Ours (when `inherit`), then `changes`: a value sets a variable, nullopt removes it.
Environment payload_environment(bool inherit,
                                const std::map<std::string, std::optional<std::string>>& changes);

// `binary` as a path to exec: made absolute when it has a '/', else searched on the PATH
// of `env` (ours when it has none); in the guest, a busybox applet found nowhere on PATH
// is /bin/busybox. Throws naming the PATH searched.
std::string resolve_binary(const std::string& binary, const Environment& env);

// The step of the child's set-up that failed, sent to the parent with errno.
enum class ChildStep : int { process_group, terminal, cgroup, stdio, working_dir, exec };

struct ChildFailure {
    ChildStep step;
    int err;
};

// Everything the child needs, prepared before fork so the child allocates nothing.
struct ChildPlan {
    std::string path;
    std::vector<std::string> argv_storage;
    std::vector<std::string> envp_storage;
    std::vector<char*> argv;
    std::vector<char*> envp;
    int stdio[3] = {-1, -1, -1};  // -1: keep ours
    int terminal_fd = -1;
    bool own_group = true;
    int cgroup_procs = -1;
    std::string working_dir;
    int report_fd = -1;

    void seal() {
        for (auto& a : argv_storage) argv.push_back(a.data());
        argv.push_back(nullptr);
        for (auto& e : envp_storage) envp.push_back(e.data());
        envp.push_back(nullptr);
    }
};

// In the child after fork: the set-up, then exec. Only async-signal-safe calls: no
// allocation, no locks, no exceptions. On failure writes a ChildFailure to
// plan.report_fd and exits 127.
[[noreturn]] void exec_child(ChildPlan& plan);

// In the parent: blocks until the child exec'd (the report pipe closes) or said why it
// could not.
std::optional<ChildFailure> read_child_failure(const Fd& report);

// The failed step in words, naming the payload, the cgroup or the path at fault.
std::string child_step_text(ChildStep step, const ChildPlan& plan, const std::string& cgroup,
                            const std::string& name);

}  // namespace ktstr
