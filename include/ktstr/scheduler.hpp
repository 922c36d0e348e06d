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

#include <fmt/format.h>

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
    Words args{};                              // passed to the scheduler binary
    std::string_view config_file{};            // host path; packed at /include-files/<file name>
    std::string_view config_arg = "--config";  // how the scheduler is told its config file
    Words sysctls{};        // "key=value", become sysctl.<key>=<value> kernel words
    Words kernel_args{};    // extra kernel command-line words
    Words include_files{};  // more files the scheduler needs in the guest

    static constexpr Scheduler eevdf() { return {.name = "eevdf"}; }
    constexpr bool is_eevdf() const { return spec.kind == SchedulerSpec::Kind::Eevdf; }
};

}  // namespace ktstr

// {fmt} prints them for logs and failure messages:
//   SchedulerSpec: eevdf | discover 'scx_simple' | path '/x/scx_simple' |
//                  kernel_builtin (enable: 'cmd'; 'cmd', disable: 'cmd')
//   Scheduler:     scx_simple (discover 'scx_simple', args: -v, sysctls: a=b)
template <>
struct fmt::formatter<ktstr::SchedulerSpec> {
    constexpr auto parse(format_parse_context& ctx) { return ctx.begin(); }

    template <typename FormatContext>
    auto format(const ktstr::SchedulerSpec& s, FormatContext& ctx) const {
        using Kind = ktstr::SchedulerSpec::Kind;
        auto quoted_list = [&](const ktstr::Words& words) {
            for (size_t i = 0; i < words.size(); ++i)
                fmt::format_to(ctx.out(), "{}'{}'", i ? "; " : "", words[i]);
            if (words.empty()) fmt::format_to(ctx.out(), "none");
        };
        switch (s.kind) {
            case Kind::Eevdf:
                return fmt::format_to(ctx.out(), "eevdf");
            case Kind::Discover:
                return fmt::format_to(ctx.out(), "discover '{}'", s.binary);
            case Kind::Path:
                return fmt::format_to(ctx.out(), "path '{}'", s.binary);
            case Kind::KernelBuiltin:
                fmt::format_to(ctx.out(), "kernel_builtin (enable: ");
                quoted_list(s.enable);
                fmt::format_to(ctx.out(), ", disable: ");
                quoted_list(s.disable);
                return fmt::format_to(ctx.out(), ")");
        }
        return fmt::format_to(ctx.out(), "?");
    }
};

template <>
struct fmt::formatter<ktstr::Scheduler> {
    constexpr auto parse(format_parse_context& ctx) { return ctx.begin(); }

    template <typename FormatContext>
    auto format(const ktstr::Scheduler& s, FormatContext& ctx) const {
        auto out = fmt::format_to(ctx.out(), "{}", s.name.empty() ? "(unnamed)" : s.name);
        if (s.is_eevdf() && s.name == "eevdf") return out;
        out = fmt::format_to(out, " ({}", s.spec);
        auto words = [&](const char* label, const ktstr::Words& w) {
            if (!w.empty()) out = fmt::format_to(out, ", {}: {}", label, fmt::join(w, " "));
        };
        words("args", s.args);
        if (!s.config_file.empty())
            out = fmt::format_to(out, ", config: {} {}", s.config_arg, s.config_file);
        words("sysctls", s.sysctls);
        words("kernel args", s.kernel_args);
        words("include files", s.include_files);
        return fmt::format_to(out, ")");
    }
};
