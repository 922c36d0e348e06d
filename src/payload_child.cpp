#include "payload_child.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <string_view>

#include "ktstr/error.hpp"
#include "ktstr/fd.hpp"
#include "ktstr/initramfs.hpp"
#include "ktstr/search_path.hpp"

extern char** environ;

namespace ktstr {

// --- Finding the program and building its environment -------------------------------------

namespace {

bool is_executable_file(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
           ::access(path.c_str(), X_OK) == 0;
}

std::optional<std::string> find_on_path(const std::string& name, std::string_view path) {
    for (const auto& dir : split_search_path(path)) {
        std::string candidate = dir + "/" + name;
        if (is_executable_file(candidate)) return candidate;
    }
    return std::nullopt;
}

// The guest has busybox's applets without their links (see base_layer): there, a name that
// busybox lists runs /bin/busybox under that name, as a link on PATH would have.
bool is_busybox_applet(const std::string& name) {
    auto list = read_file_if_present(kBusyboxAppletList);
    return list && is_listed(*list, name);
}

}  // namespace

Environment payload_environment(bool inherit,
                                const std::map<std::string, std::optional<std::string>>& changes) {
    Environment env;
    for (char** e = environ; inherit && e && *e; ++e) {
        std::string_view entry(*e);
        auto eq = entry.find('=');
        if (eq != std::string_view::npos) env.emplace(entry.substr(0, eq), entry.substr(eq + 1));
    }
    for (const auto& [name, value] : changes) {
        if (value)
            env[name] = *value;
        else
            env.erase(name);
    }
    return env;
}

std::string resolve_binary(const std::string& binary, const Environment& env) {
    if (binary.find('/') != std::string::npos) return std::filesystem::absolute(binary).string();
    const char* ours = ::getenv("PATH");
    auto it = env.find("PATH");
    std::string path = it != env.end() ? it->second : ours ? ours : "/bin:/usr/bin";
    if (auto found = find_on_path(binary, path)) return *found;
    if (is_busybox_applet(binary)) return "/bin/busybox";
    throw Error("cannot find payload binary " + quoted(binary) + " on PATH " + quoted(path));
}

// --- The child, between fork and exec ------------------------------------------------------

namespace {

[[noreturn]] void fail_in_child(int report_fd, ChildStep step) {
    ChildFailure failure{step, errno};
    (void)!::write(report_fd, &failure, sizeof failure);
    ::_exit(127);
}

// A descriptor below 3 would be overwritten by the dup2() onto stdin/stdout/stderr.
void lift_above_stdio(int& fd) {
    if (fd >= 0 && fd < 3) fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

void reset_signals() {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &dfl, nullptr);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

}  // namespace

[[noreturn]] void exec_child(ChildPlan& p) {
    lift_above_stdio(p.report_fd);
    lift_above_stdio(p.cgroup_procs);
    for (int& fd : p.stdio) lift_above_stdio(fd);
    reset_signals();

    if (p.terminal_fd >= 0) {
        if (::setsid() < 0) fail_in_child(p.report_fd, ChildStep::process_group);
        if (::ioctl(p.stdio[0], TIOCSCTTY, 0) < 0) fail_in_child(p.report_fd, ChildStep::terminal);
    } else if (p.own_group && ::setpgid(0, 0) < 0) {
        fail_in_child(p.report_fd, ChildStep::process_group);
    }

    // "0" moves the writer itself, so the pid needs no formatting here.
    if (p.cgroup_procs >= 0 && ::write(p.cgroup_procs, "0", 1) != 1)
        fail_in_child(p.report_fd, ChildStep::cgroup);

    for (int target = 0; target < 3; ++target) {
        if (p.stdio[target] >= 0 && ::dup2(p.stdio[target], target) < 0)
            fail_in_child(p.report_fd, ChildStep::stdio);
    }
    if (!p.working_dir.empty() && ::chdir(p.working_dir.c_str()) < 0)
        fail_in_child(p.report_fd, ChildStep::working_dir);

    ::execve(p.path.c_str(), p.argv.data(), p.envp.data());
    fail_in_child(p.report_fd, ChildStep::exec);
}

// --- The parent's side of the start-up -----------------------------------------------------

std::string child_step_text(ChildStep step, const ChildPlan& plan, const std::string& cgroup,
                            const std::string& name) {
    switch (step) {
        case ChildStep::process_group:
            return "cannot create process group for payload " + quoted(name);
        case ChildStep::terminal:
            return "cannot take controlling terminal for " + quoted(name);
        case ChildStep::cgroup:
            return "cannot join cgroup " + quoted(cgroup);
        case ChildStep::stdio:
            return "cannot redirect stdio of payload " + quoted(name);
        case ChildStep::working_dir:
            return "cannot change to directory " + quoted(plan.working_dir);
        case ChildStep::exec:
            return "cannot execute " + quoted(plan.path);
    }
    return "cannot start payload " + quoted(name);
}

std::optional<ChildFailure> read_child_failure(const Fd& report) {
    ChildFailure failure{};
    ssize_t n;
    do {
        n = ::read(report.get(), &failure, sizeof failure);
    } while (n < 0 && errno == EINTR);
    if (n < 0) throw_errno("cannot read payload start-up report");
    if (n == 0) return std::nullopt;
    return failure;
}

}  // namespace ktstr
