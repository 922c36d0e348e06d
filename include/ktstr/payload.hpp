// A payload: a scheduler, or a binary run as a workload. Literal values,
// declared `inline constexpr` at namespace scope.
//
// With the helper, the binary is packed for you (it goes first in
// include_files):
//
//   inline constexpr ktstr::Payload fio = ktstr::binary_payload("fio", {
//       .default_args = {"--output-format=json"},
//       .output = ktstr::OutputFormat::Json,
//   });
//
// Written by hand as an aggregate, nothing is injected: list the binary in
// include_files (or in the test's extra_include_files) yourself, or the
// spawn fails with an error that names it and says how to package it.
//
//   inline constexpr ktstr::Payload stress{
//       .name = "stress-ng",
//       .kind = ktstr::Binary{"stress-ng"},
//       .include_files = {"stress-ng"},
//   };
#pragma once

#include <string_view>
#include <variant>

#include "ktstr/fixed_list.hpp"
#include "ktstr/scheduler.hpp"

namespace ktstr {

struct Binary {
    std::string_view name{};  // looked up on the guest PATH (or a path)
    constexpr bool operator==(const Binary&) const = default;
};

// Exactly two variants: a scheduler, or a binary run as a workload.
using PayloadKind = std::variant<const Scheduler*, Binary>;

enum class OutputFormat { Plain, Json };

// A default check on a payload's result.
struct Check {
    enum class Kind { ExitCode, JsonFieldExists, JsonFieldInRange };
    Kind kind = Kind::ExitCode;
    int exit_code = 0;
    std::string_view field{};  // a JSON pointer: "/jobs/0/read/iops"
    double low = 0, high = 0;

    static constexpr Check exit_code_is(int code) { return {Kind::ExitCode, code, {}, 0, 0}; }
    static constexpr Check json_has(std::string_view pointer) {
        return {Kind::JsonFieldExists, 0, pointer, 0, 0};
    }
    static constexpr Check json_in_range(std::string_view pointer, double low, double high) {
        return {Kind::JsonFieldInRange, 0, pointer, low, high};
    }
};

using Checks = FixedList<Check, 8>;

struct Payload {
    std::string_view name{};
    PayloadKind kind = Binary{};
    Words default_args{};
    Words include_files{};
    bool uses_parent_pgrp = false;  // tty job-control tools: killed by pid only
    OutputFormat output = OutputFormat::Plain;
    Checks checks{};

    static constexpr Payload for_scheduler(const Scheduler& s) {
        return {.name = s.name, .kind = &s};
    }
    // The kernel's default scheduler: what a test runs under when it names none.
    static constexpr Payload kernel_default();

    constexpr bool is_scheduler() const { return std::holds_alternative<const Scheduler*>(kind); }
    constexpr const Scheduler* scheduler() const {
        return is_scheduler() ? std::get<const Scheduler*>(kind) : nullptr;
    }
    constexpr std::string_view binary() const {
        return is_scheduler() ? std::string_view{} : std::get<Binary>(kind).name;
    }
};

inline constexpr Scheduler kEevdf = Scheduler::eevdf();
constexpr Payload Payload::kernel_default() {
    return for_scheduler(kEevdf);
}

// The options binary_payload() takes: a Payload without name and kind.
struct BinaryPayloadOptions {
    std::string_view name{};  // defaults to the binary
    Words default_args{};
    Words include_files{};
    bool uses_parent_pgrp = false;
    OutputFormat output = OutputFormat::Plain;
    Checks checks{};
};

// A binary payload whose include_files start with the binary itself.
constexpr Payload binary_payload(std::string_view binary, BinaryPayloadOptions o = {}) {
    Payload p{.name = o.name.empty() ? binary : o.name,
              .kind = Binary{binary},
              .default_args = o.default_args,
              .uses_parent_pgrp = o.uses_parent_pgrp,
              .output = o.output,
              .checks = o.checks};
    p.include_files.push_back(binary);
    for (auto f : o.include_files)
        if (f != binary) p.include_files.push_back(f);
    return p;
}

}  // namespace ktstr

// {fmt} prints them for logs and failure messages:
//   PayloadKind: binary 'fio' | scheduler scx_simple
//   Payload:     fio (binary 'fio', args: --rw=read, json output, 2 checks)
//                scx_simple (scheduler scx_simple (discover 'scx_simple'))
template <>
struct fmt::formatter<ktstr::PayloadKind> {
    constexpr auto parse(format_parse_context& ctx) { return ctx.begin(); }

    template <typename FormatContext>
    auto format(const ktstr::PayloadKind& kind, FormatContext& ctx) const {
        if (const auto* b = std::get_if<ktstr::Binary>(&kind))
            return fmt::format_to(ctx.out(), "binary '{}'", b->name);
        const ktstr::Scheduler* s = std::get<const ktstr::Scheduler*>(kind);
        if (!s) return fmt::format_to(ctx.out(), "scheduler (none)");
        return fmt::format_to(ctx.out(), "scheduler {}", *s);
    }
};

template <>
struct fmt::formatter<ktstr::Payload> {
    constexpr auto parse(format_parse_context& ctx) { return ctx.begin(); }

    template <typename FormatContext>
    auto format(const ktstr::Payload& p, FormatContext& ctx) const {
        auto out =
            fmt::format_to(ctx.out(), "{} ({}", p.name.empty() ? "(unnamed)" : p.name, p.kind);
        if (!p.default_args.empty())
            out = fmt::format_to(out, ", args: {}", fmt::join(p.default_args, " "));
        if (!p.include_files.empty())
            out = fmt::format_to(out, ", include files: {}", fmt::join(p.include_files, " "));
        if (p.uses_parent_pgrp) out = fmt::format_to(out, ", in the parent's process group");
        if (p.output == ktstr::OutputFormat::Json) out = fmt::format_to(out, ", json output");
        if (!p.checks.empty())
            out = fmt::format_to(out, ", {} check{}", p.checks.size(),
                                 p.checks.size() == 1 ? "" : "s");
        return fmt::format_to(out, ")");
    }
};
