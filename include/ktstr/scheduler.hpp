// A scheduler under test, as a literal value: declare it `inline constexpr`
// at namespace scope and point payloads and tests at it.
//
//   inline constexpr ktstr::Scheduler scx_simple{
//       .name = "scx_simple",
//       .spec = ktstr::SchedulerSpec::discover("scx_simple"),
//       .args = {"-v"},
//   };
#pragma once

#include <string_view>

#include "ktstr/fixed_list.hpp"

namespace ktstr {

struct SchedulerSpec {
    enum class Kind {
        Eevdf,          // the kernel's default scheduler: nothing to start
        Discover,       // a binary found by name (KTSTR_SCHEDULER, suite dir, build tree, PATH)
        Path,           // a binary at a host path
        KernelBuiltin,  // commands the guest runs to switch a built-in scheduler on and off
    };

    Kind kind = Kind::Eevdf;
    std::string_view binary{};  // Discover: the name; Path: the host path
    Words enable{};             // KernelBuiltin: shell commands run before the body
    Words disable{};            // KernelBuiltin: shell commands run after the body

    static constexpr SchedulerSpec eevdf() { return {}; }
    static constexpr SchedulerSpec discover(std::string_view name) {
        return {Kind::Discover, name, {}, {}};
    }
    static constexpr SchedulerSpec path(std::string_view host_path) {
        return {Kind::Path, host_path, {}, {}};
    }
    static constexpr SchedulerSpec kernel_builtin(Words enable, Words disable) {
        return {Kind::KernelBuiltin, {}, enable, disable};
    }
};

struct Scheduler {
    std::string_view name{};
    SchedulerSpec spec{};
    Words args{};                    // passed to the scheduler binary
    std::string_view config_file{};  // host path; packed at /include-files/<file name>
    std::string_view config_arg = "--config";  // how the scheduler is told its config file
    Words sysctls{};                 // "key=value", become sysctl.<key>=<value> kernel words
    Words kernel_args{};             // extra kernel command-line words
    Words include_files{};           // more files the scheduler needs in the guest

    static constexpr Scheduler eevdf() { return {.name = "eevdf"}; }
    constexpr bool is_eevdf() const { return spec.kind == SchedulerSpec::Kind::Eevdf; }
};

}  // namespace ktstr
