#include "scheduler_run.hpp"

#include <signal.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <thread>

#include <fmt/format.h>

#include "ktstr/error.hpp"
#include "ktstr/log.hpp"
#include "suite.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace ktstr::suite {
namespace {

constexpr const char* kSchedExt = "/sys/kernel/sched_ext";
constexpr auto kDisableWait = 10s;    // the kernel's disable work, slow under TCG
constexpr auto kReasonGrace = 500ms;  // after `disabled`, for the deferred reason to be printed
constexpr auto kStopGrace = 5s;       // SIGTERM to SIGKILL
constexpr auto kOwnExitGrace = 2s;    // an ejected scheduler prints its dump and exits
constexpr size_t kOutputInMessage = 256 << 10;

// --- Text ---------------------------------------------------------------------------------

std::vector<std::string_view> split_lines(std::string_view text) {
    std::vector<std::string_view> lines;
    while (!text.empty()) {
        auto end = text.find('\n');
        lines.push_back(text.substr(0, end));
        if (end == std::string_view::npos) break;
        text.remove_prefix(end + 1);
    }
    return lines;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

bool contains(std::string_view hay, std::string_view needle) {
    return hay.find(needle) != std::string_view::npos;
}

bool contains_nocase(std::string_view hay, std::string_view needle) {
    auto it = std::search(hay.begin(), hay.end(), needle.begin(), needle.end(), [](char a, char b) {
        return std::tolower(static_cast<unsigned char>(a)) ==
               std::tolower(static_cast<unsigned char>(b));
    });
    return it != hay.end();
}

// The text between the first `open` quote after `key` and the next `close`.
std::optional<std::string> quoted_after(std::string_view line, std::string_view key,
                                        char open = '\'', char close = '\'') {
    auto at = line.find(key);
    if (at == std::string_view::npos) return std::nullopt;
    auto start = line.find(open, at + key.size());
    if (start == std::string_view::npos) return std::nullopt;
    auto end = line.find(close, start + 1);
    if (end == std::string_view::npos) return std::nullopt;
    return std::string(line.substr(start + 1, end - start - 1));
}

std::string join(const std::vector<std::string>& lines, std::string_view indent) {
    std::string s;
    for (const auto& l : lines) s += (s.empty() ? "" : "\n") + std::string(indent) + l;
    return s;
}

// --- Errnos as libbpf and loaders print them -----------------------------------------------

struct Errno {
    const char* symbol;  // newer libbpf: "-EBUSY"
    const char* text;    // strerror: "Device or resource busy"
    const char* number;  // older libbpf: "(-16)"
};

constexpr Errno kBusy{"EBUSY", "Device or resource busy", "(-16)"};
constexpr Errno kTooBig{"E2BIG", "Argument list too long", "(-7)"};
constexpr Errno kInvalid{"EINVAL", "Invalid argument", "(-22)"};

std::optional<std::string_view> line_naming(const std::vector<std::string_view>& lines,
                                            const Errno& e) {
    for (auto l : lines)
        if (contains(l, e.symbol) || contains(l, e.text) || contains(l, e.number)) return trim(l);
    return std::nullopt;
}

// --- Verifier logs: libbpf frames them with BEGIN/END PROG LOAD LOG -------------------------

struct VerifierLog {
    std::string program;
    std::string failure;  // "Permission denied", after "BPF program load failed: "
    std::vector<std::string_view> lines;
    bool ended = false;  // the END marker was seen
};

std::optional<VerifierLog> find_verifier_log(const std::vector<std::string_view>& lines) {
    constexpr std::string_view begin = "-- BEGIN PROG LOAD LOG --", end = "-- END PROG LOAD LOG --";
    VerifierLog log;
    size_t i = 0;
    for (; i < lines.size() && !contains(lines[i], begin); ++i) {
        if (auto at = lines[i].find("BPF program load failed: "); at != std::string_view::npos)
            log.failure = trim(lines[i].substr(at + 25));
    }
    if (i == lines.size()) return std::nullopt;
    log.program = quoted_after(lines[i], "prog ").value_or("?");
    for (++i; i < lines.size(); ++i) {
        if (auto at = lines[i].find(end); at != std::string_view::npos) {
            if (!trim(lines[i].substr(0, at)).empty()) log.lines.push_back(lines[i].substr(0, at));
            log.ended = true;
            break;
        }
        log.lines.push_back(lines[i]);
    }
    return log;
}

// The verifier ends its log with statistics; the reason is the line before them.
bool is_verifier_summary(std::string_view line) {
    line = trim(line);
    return line.empty() || line.starts_with("processed ") ||
           line.starts_with("verification time") || line.starts_with("stack depth") ||
           line.starts_with("max_states_per_insn");
}

AttachError verifier_rejection(const VerifierLog& log, bool output_truncated) {
    AttachError e{AttachErrorKind::VerifierRejected, {}, {}, false};
    size_t last = log.lines.size();
    while (last > 0 && is_verifier_summary(log.lines[last - 1])) --last;
    std::string why = last ? std::string(trim(log.lines[last - 1])) : "(the log is empty)";
    e.reason = "the verifier rejected program " + quoted(log.program) +
               (log.failure.empty() ? "" : " (" + log.failure + ")") + ": " + why;

    std::vector<std::string> tail;
    for (size_t i = log.lines.size() > 12 ? log.lines.size() - 12 : 0; i < log.lines.size(); ++i)
        tail.emplace_back(log.lines[i]);
    e.reason += "\nend of the verifier log:\n" + join(tail, "  ");

    for (auto l : log.lines) e.verifier_log += std::string(l) + "\n";
    e.log_cut = !log.ended || output_truncated || contains(log.failure, "ENOSPC") ||
                contains(log.failure, "No space left on device");
    return e;
}

// A missing kfunc: libbpf says so while resolving externs, or (for a __weak one) poisons the
// call and explains the verifier's rejection of it.
std::optional<std::string> missing_kfunc(const std::vector<std::string_view>& lines) {
    for (auto l : lines) {
        if (contains(l, "extern (func ksym)") && contains(l, "not found"))
            return "the kernel has no kfunc " + quoted(quoted_after(l, "ksym)").value_or("?"));
        if (contains(l, "extern (func ksym)") && contains(l, "incompatible with"))
            return "the kernel's kfunc " + quoted(quoted_after(l, "ksym)").value_or("?")) +
                   " has another prototype: " + std::string(trim(l));
        if (contains(l, "is referenced but wasn't resolved"))
            return "the kernel has no kfunc " + quoted(quoted_after(l, "kfunc").value_or("?"));
    }
    return std::nullopt;
}

const char* kTaintNames[] = {
    "P (proprietary module)",
    "F (module force-loaded)",
    "S (unsafe SMP)",
    "R (module force-unloaded)",
    "M (machine check)",
    "B (bad page)",
    "U (user request)",
    "D (kernel died: oops or BUG)",
    "A (ACPI table overridden)",
    "W (kernel warning)",
    "C (staging driver)",
    "I (firmware workaround)",
    "O (out-of-tree module)",
    "E (unsigned module)",
    "L (soft lockup)",
    "K (live patch)",
    "X (auxiliary)",
    "T (struct randomization)",
    "N (test)",
    "J (fwctl)",
};

std::string tail_bytes(const std::string& text, size_t max) {
    if (text.size() <= max) return text;
    return "[... " + std::to_string(text.size() - max) + " bytes before]\n" +
           text.substr(text.size() - max);
}

std::string read_first_line(const fs::path& p) {
    std::ifstream in(p);
    std::string s;
    std::getline(in, s);
    return std::string(trim(s));
}

}  // namespace

// --- The kernel log -------------------------------------------------------------------------

std::optional<KernelRecord> parse_kmsg_record(std::string_view record) {
    auto semicolon = record.find(';');
    auto comma = record.find(',');
    if (semicolon == std::string_view::npos || comma == std::string_view::npos || comma > semicolon)
        return std::nullopt;
    KernelRecord r;
    try {
        int prio = std::stoi(std::string(record.substr(0, comma)));
        r.level = prio & 7;
        r.facility = prio >> 3;
    } catch (const std::exception&) {
        return std::nullopt;
    }
    auto text = record.substr(semicolon + 1);
    r.text = std::string(text.substr(0, text.find('\n')));
    return r;
}

KernelLog::KernelLog() {
    fd_.reset(::open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    if (fd_ && ::lseek(fd_.get(), 0, SEEK_END) < 0) fd_.reset();
}

void KernelLog::read_new() {
    char record[8192];
    while (fd_) {
        ssize_t n = ::read(fd_.get(), record, sizeof record);
        if (n > 0) {
            if (auto r = parse_kmsg_record({record, size_t(n)})) records_.push_back(*r);
            continue;
        }
        // EPIPE: records were overwritten before we read them; reading goes on after them.
        if (n < 0 && (errno == EPIPE || errno == EINTR)) continue;
        return;
    }
}

// --- Classification -------------------------------------------------------------------------

const char* attach_error_kind_name(AttachErrorKind kind) {
    switch (kind) {
        case AttachErrorKind::Busy:
            return "busy";
        case AttachErrorKind::MissingKfunc:
            return "missing kfunc";
        case AttachErrorKind::RefusedOption:
            return "refused option";
        case AttachErrorKind::VerifierRejected:
            return "verifier rejection";
        case AttachErrorKind::Exited:
            return "exited";
        case AttachErrorKind::NotAttached:
            return "not attached";
        case AttachErrorKind::WrongName:
            return "wrong name";
    }
    return "?";
}

AttachError classify_attach_failure(std::string_view output,
                                    const std::vector<KernelRecord>& kernel,
                                    std::string_view attached_ops, bool output_truncated) {
    auto lines = split_lines(output);
    auto verifier = find_verifier_log(lines);
    if (auto kfunc = missing_kfunc(lines)) {
        AttachError e{AttachErrorKind::MissingKfunc, *kfunc, {}, false};
        if (verifier) e.verifier_log = verifier_rejection(*verifier, output_truncated).verifier_log;
        return e;
    }
    if (verifier) return verifier_rejection(*verifier, output_truncated);

    if (auto line = line_naming(lines, kBusy)) {
        std::string holder =
            attached_ops.empty()
                ? "another sched_ext scheduler was attached (it has left since)"
                : "another sched_ext scheduler is attached: " + quoted(attached_ops);
        return {AttachErrorKind::Busy, holder + " (" + std::string(*line) + ")", {}, false};
    }

    std::string kernel_says;
    if (auto ej = find_ejection(kernel); ej && ej->error)
        kernel_says =
            "; the kernel: " + ej->reason + (ej->message.empty() ? "" : ": " + ej->message);
    for (const Errno* e : {&kTooBig, &kInvalid})
        if (auto line = line_naming(lines, *e))
            return {AttachErrorKind::RefusedOption,
                    std::string("the kernel refused a setting (") + e->symbol +
                        "): " + std::string(*line) + kernel_says,
                    {},
                    false};

    std::string last = "(no output)";
    for (auto l : lines)
        if (!trim(l).empty()) last = trim(l);
    return {AttachErrorKind::Exited, last + kernel_says, {}, false};
}

std::optional<Ejection> find_ejection(const std::vector<KernelRecord>& kernel) {
    constexpr std::string_view prefix = "sched_ext: BPF ";
    std::optional<Ejection> found;
    for (size_t i = 0; i < kernel.size(); ++i) {
        std::string_view text = kernel[i].text;
        if (kernel[i].facility != 0 || !text.starts_with(prefix) ||
            !contains(text, "\" disabled ("))
            continue;
        Ejection e;
        e.scheduler = quoted_after(text, "scheduler", '"', '"').value_or("?");
        auto close = text.rfind(')');
        auto open = text.find(" disabled (");
        if (open != std::string_view::npos && close != std::string_view::npos && close > open)
            e.reason = text.substr(open + 11, close - open - 11);
        e.error = kernel[i].level <= 3;
        e.lines.push_back(kernel[i].text);
        std::string said = "sched_ext: " + e.scheduler + ": ";
        for (size_t j = i + 1; j < kernel.size() && e.lines.size() < 40; ++j) {
            std::string_view next = kernel[j].text;
            if (next.starts_with(said) && e.message.empty())
                e.message = next.substr(said.size());
            else if (next.empty() || !std::isspace(static_cast<unsigned char>(next.front())))
                break;
            e.lines.push_back(kernel[j].text);
        }
        e.kind = e.reason == "runnable task stall"      ? EjectionKind::Stall
                 : e.reason == "scx_bpf_error"          ? EjectionKind::BpfError
                 : e.reason == "runtime error"          ? EjectionKind::RuntimeError
                 : e.reason.starts_with("unregistered") ? EjectionKind::Unregistered
                                                        : EjectionKind::Other;
        found = std::move(e);
    }
    return found;
}

std::vector<std::string> kernel_problems(const std::vector<KernelRecord>& kernel) {
    static constexpr std::string_view starts[] = {
        "WARNING:",     "BUG:",           "kernel BUG at", "Oops:",  "general protection fault",
        "Kernel panic", "watchdog: BUG:", "UBSAN:",        "KASAN:", "Unable to handle kernel"};
    std::vector<std::string> problems;
    for (size_t i = 0; i < kernel.size(); ++i) {
        std::string_view text = kernel[i].text;
        if (kernel[i].facility != 0) continue;
        if (std::none_of(std::begin(starts), std::end(starts),
                         [&](std::string_view s) { return text.starts_with(s); }))
            continue;
        std::string p(text);
        for (size_t j = i + 1; j < kernel.size() && j <= i + 8; ++j) p += "\n  " + kernel[j].text;
        problems.push_back(std::move(p));
    }
    return problems;
}

std::string describe_new_taint(unsigned long before, unsigned long after) {
    std::string s;
    unsigned long added = after & ~before;
    for (unsigned bit = 0; bit < sizeof(unsigned long) * 8; ++bit) {
        if (!(added & (1UL << bit))) continue;
        s += s.empty() ? "" : ", ";
        s += bit < std::size(kTaintNames) ? kTaintNames[bit] : "bit " + std::to_string(bit);
    }
    return s;
}

// --- sched_ext's sysfs ----------------------------------------------------------------------

bool kernel_has_sched_ext() {
    return fs::exists(kSchedExt);
}

std::string read_sched_ext(const char* file) {
    return read_first_line(fs::path(kSchedExt) / file);
}

std::string attached_ops() {
    return read_sched_ext("root/ops");
}

bool ops_names(std::string_view ops, std::string_view name) {
    return !name.empty() && ops.starts_with(name);
}

std::string scheduler_label(const Scheduler& s) {
    if (!s.name.empty()) return std::string(s.name);
    return fs::path(s.spec.binary).filename().string();
}

std::string KernelVerdict::reason() const {
    if (!ejection) return {};
    return ejection->reason + (ejection->message.empty() ? "" : ": " + ejection->message);
}

KernelVerdict await_kernel_verdict(KernelLog& log) {
    auto until = Clock::now() + kDisableWait;
    while (read_sched_ext("state") != "disabled" && Clock::now() < until)
        std::this_thread::sleep_for(50ms);
    std::string state = read_sched_ext("state");
    std::this_thread::sleep_for(kReasonGrace);
    log.read_new();

    KernelVerdict v;
    if (state != "disabled")
        v.messages.push_back("sched_ext is still " + quoted(state) + " " +
                             std::to_string(kDisableWait.count()) + " s later");
    v.ejection = find_ejection(log.records());
    if (v.ejection)
        v.messages.push_back("the kernel's log:\n" + join(v.ejection->lines, "  "));
    else
        v.messages.push_back(log.fd() < 0 ? "no kernel log: /dev/kmsg cannot be read"
                                          : "the kernel log says nothing about it");
    return v;
}

// --- A running scheduler --------------------------------------------------------------------

namespace {

PayloadRun scheduler_run(const Scheduler& s) {
    PayloadRun run(guest_binary_path(s.spec.binary));
    for (auto a : s.args) run.arg(std::string(a));
    if (!s.config_file.empty())
        run.arg(std::string(s.config_arg)).arg(guest_binary_path(s.config_file));
    return std::move(run.capture_limit(16 << 20));
}

AttachFailure failed_start(PayloadHandle& handle, AttachError error) {
    handle.kill();
    AttachFailure f{std::move(error), handle.wait_and_capture()};
    return f;
}

// Output that ends in a libbpf log is worth classifying only after the kernel has printed
// its part too: an enable that fails is torn down by deferred work.
AttachFailure classified_exit(PayloadHandle& handle, KernelLog& log) {
    auto report = handle.wait_and_capture();
    std::this_thread::sleep_for(200ms);
    log.read_new();
    auto error =
        classify_attach_failure(report.out.bytes + report.err.bytes, log.records(), attached_ops(),
                                report.out.truncated || report.err.truncated);
    return {std::move(error), std::move(report)};
}

}  // namespace

RunningScheduler::RunningScheduler(const Scheduler& s, PayloadHandle handle, std::string ops)
    : scheduler_(&s), handle_(std::move(handle)), ops_(std::move(ops)) {}

StartResult RunningScheduler::start(const Scheduler& s, KernelLog& log) {
    std::string name = scheduler_label(s);
    if (auto state = read_sched_ext("state"); state != "disabled") {
        auto holder = attached_ops();
        return AttachFailure{{AttachErrorKind::Busy,
                              "another sched_ext scheduler is attached: " +
                                  (holder.empty() ? "(root/ops unreadable)" : quoted(holder)) +
                                  " (state " + state + ")",
                              {},
                              false},
                             {}};
    }
    auto seq = read_sched_ext("enable_seq");
    auto handle = scheduler_run(s).spawn();

    for (auto until = Clock::now() + kSchedulerAttachTimeout;;) {
        auto exit = handle.wait_for(50ms);
        log.read_new();
        auto state = read_sched_ext("state");
        bool moved = read_sched_ext("enable_seq") != seq;
        if (moved && state == "enabled") {
            auto ops = attached_ops();
            if (s.name.empty() ? !ops.empty() : ops_names(ops, s.name))
                return RunningScheduler(s, std::move(handle), ops);
            if (!ops.empty())
                return failed_start(handle, {AttachErrorKind::WrongName,
                                             "the kernel attached ops " + quoted(ops) +
                                                 ", but the Scheduler's name is " + quoted(name) +
                                                 " (name must be the ops name, or its start)",
                                             {},
                                             false});
        }
        // It attached and was ejected (or left) before we saw it `enabled`.
        if (moved && (state == "disabling" || state == "disabled"))
            return RunningScheduler(s, std::move(handle), name);
        if (exit) return classified_exit(handle, log);
        if (Clock::now() >= until)
            return failed_start(handle, {AttachErrorKind::NotAttached,
                                         "the kernel did not attach it within " +
                                             std::to_string(kSchedulerAttachTimeout.count()) +
                                             " s (sched_ext state " + quoted(state) + ")",
                                         {},
                                         false});
    }
}

std::optional<PayloadExit> RunningScheduler::poll() {
    return handle_->try_wait();
}

bool RunningScheduler::attached() const {
    return read_sched_ext("state") == "enabled";
}

PayloadReport RunningScheduler::end_process(std::chrono::milliseconds own_exit_grace) {
    auto exit = handle_->wait_for(own_exit_grace);
    if (!exit) {
        // The leader is not reaped yet, so its group id is still its own.
        ::killpg(handle_->pgid(), SIGTERM);
        exit = handle_->wait_for(kStopGrace);
    }
    if (!exit) handle_->kill();
    return handle_->wait_and_capture();
}

std::vector<std::string> RunningScheduler::output_messages(const PayloadReport& r) const {
    std::vector<std::string> messages;
    std::string who = "scheduler " + quoted(ops_);
    std::string err = r.err.bytes;
    std::string flags;
    if (contains_nocase(err, "truncated")) flags += " (it says its output was truncated)";
    if (r.err.truncated) flags += " (cut at ktstr's capture limit)";
    if (err.size() > kOutputInMessage) {
        flags += " (the first " + std::to_string(kOutputInMessage >> 10) + " KiB of " +
                 std::to_string(err.size() >> 10) + " KiB)";
        err.resize(kOutputInMessage);
    }
    messages.push_back(who + " " + r.describe() + "; its stderr" + flags +
                       (err.empty() ? ": (empty)" : ":\n" + err));
    if (!r.out.bytes.empty())
        messages.push_back(who + " stdout (end):\n" + tail_bytes(r.out.bytes, 2000));
    return messages;
}

std::vector<std::string> RunningScheduler::report_loss(KernelLog& log,
                                                       std::optional<double> body_s) {
    auto verdict = await_kernel_verdict(log);
    // Ejected before it was seen `enabled`, it has no ops name yet: the kernel's is the one.
    if (verdict.ejection && verdict.ejection->scheduler != "?") ops_ = verdict.ejection->scheduler;
    // Polled after the wait: a loader's exit and the kernel's unregistering of it race.
    auto exit = poll();
    auto report = end_process(kOwnExitGrace);

    std::string when = "right after attaching";
    if (body_s) {
        char at[48];
        std::snprintf(at, sizeof at, "%.1f s into the test body", *body_s);
        when = at;
    }
    std::string what = verdict.ejection && verdict.ejection->error
                           ? "was ejected by the kernel " + when
                       : exit ? "exited " + when + " (" + exit->describe() + ")"
                              : "was disabled " + when;
    auto reason = verdict.reason();
    std::vector<std::string> messages = {"scheduler " + quoted(ops_) + " " + what + ": " +
                                         (reason.empty() ? "the kernel gave no reason" : reason)};
    messages.insert(messages.end(), verdict.messages.begin(), verdict.messages.end());
    auto output = output_messages(report);
    messages.insert(messages.end(), output.begin(), output.end());
    return messages;
}

std::vector<std::string> RunningScheduler::stop(KernelLog& log) {
    std::vector<std::string> messages;
    ::killpg(handle_->pgid(), SIGTERM);
    if (!handle_->wait_for(kStopGrace)) {
        handle_->kill();
        messages.push_back(fmt::format(
            "scheduler '{}' ignored SIGTERM at stop: still running {} s later, so it was killed "
            "with SIGKILL",
            ops_, kStopGrace.count()));
    }
    auto report = handle_->wait_and_capture();

    auto verdict = await_kernel_verdict(log);
    if (auto state = read_sched_ext("state"); state != "disabled")
        messages.push_back("scheduler " + quoted(ops_) + " stopped, but sched_ext is still " +
                           quoted(state));
    else if (verdict.ejection && verdict.ejection->error)
        messages.push_back("scheduler " + quoted(ops_) +
                           " was ejected by the kernel as it stopped: " + verdict.reason());
    if (messages.empty()) {
        // -v: what a scheduler said is worth seeing even when all went well.
        if (!report.err.bytes.empty())
            ktstr::log(LogLevel::Debug, "scheduler '{}' stopped cleanly; its stderr:\n{}", ops_,
                       tail_bytes(report.err.bytes, kOutputInMessage));
        return messages;
    }
    messages.insert(messages.end(), verdict.messages.begin(), verdict.messages.end());
    auto output = output_messages(report);
    messages.insert(messages.end(), output.begin(), output.end());
    return messages;
}

std::vector<std::string> describe_attach_failure(const Scheduler& s, const AttachFailure& f) {
    auto name = scheduler_label(s);
    std::vector<std::string> messages = {"cannot attach scheduler " + quoted(name) + ": " +
                                         attach_error_kind_name(f.error.kind) + ": " +
                                         f.error.reason};
    if (!f.error.verifier_log.empty())
        messages.push_back(
            std::string("the whole verifier log is on the test's stderr") +
            (f.error.log_cut ? "; it was cut: the start or the end is missing" : ""));
    const auto& r = f.report;
    if (!r.exit_code && !r.signal) return messages;  // never started
    std::string err = tail_bytes(r.err.bytes, kOutputInMessage);
    bool killed_by_us =
        f.error.kind == AttachErrorKind::NotAttached || f.error.kind == AttachErrorKind::WrongName;
    messages.push_back("scheduler " + quoted(name) + " " +
                       (killed_by_us ? "was killed by ktstr, " : "") + r.describe() +
                       "; its stderr" + (r.err.truncated ? " (cut at ktstr's capture limit)" : "") +
                       (err.empty() ? ": (empty)" : ":\n" + err));
    if (!r.out.bytes.empty())
        messages.push_back("scheduler " + quoted(name) + " stdout (end):\n" +
                           tail_bytes(r.out.bytes, 2000));
    return messages;
}

}  // namespace ktstr::suite
