// The suite runner's parts, shared by its host and guest halves.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ktstr/test.hpp"

namespace ktstr::suite {

// The guest half: runs one test's body (with its scheduler) and writes the
// result as JSON to $KTSTR_RESULT_FILE. Returns the process exit code.
int run_in_guest(const std::string& name);

// What runs in the body's child process, given the fd its result goes to. It must not return:
// a test body exits once its result is written; a command execs.
using BodyMain = std::function<void(int result_fd)>;

// How a body went under its scheduler, with the kernel watched around it.
struct GuardedRun {
    std::optional<AssertResult> body;      // its own result; unset when it was killed
    std::optional<PayloadExit> body_exit;  // how its process ended, when it ended by itself
    std::vector<std::string> problems;     // timeout, scheduler, kernel: each one a failure
    std::string scheduler = "eevdf";       // or the ops name the kernel showed
    std::optional<std::string> skipped;    // why the body could not run here at all
    bool scheduler_lost = false;           // it died or was ejected while the body ran
};

// Starts `s` (EEVDF when null, or eevdf), runs `main` in its own process group while watching
// the scheduler and the kernel log, kills it past `timeout_s` (0: no limit), stops the
// scheduler, and checks the kernel for warnings and new taint.
GuardedRun run_guarded(const Scheduler* s, double timeout_s, const BodyMain& main);

nlohmann::json result_to_json(const AssertResult& r);

// The guest path of a scheduler binary: packed at /include-files/<file name>.
std::string guest_binary_path(std::string_view host_or_name);

}  // namespace ktstr::suite
