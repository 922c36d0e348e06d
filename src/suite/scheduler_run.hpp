// A sched_ext scheduler's life in the guest: started in its own process group, counted as
// attached only when the kernel says so, watched while the test body runs, stopped after it;
// and, when something goes wrong, what went wrong in the kernel's (or libbpf's) own words.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "ktstr/fd.hpp"
#include "ktstr/payload_run.hpp"
#include "ktstr/scheduler.hpp"

namespace ktstr::suite {

// How long a scheduler may take from its start until the kernel has attached it.
inline constexpr std::chrono::seconds kSchedulerAttachTimeout{20};
// The longest watchdog timeout sched_ext allows a scheduler, and its default.
inline constexpr std::chrono::seconds kSchedExtWatchdogMax{30};
// After the body: the kernel's disable work, its reason, the scheduler's exit dump and stop.
inline constexpr std::chrono::seconds kSchedulerEndAllowance{20};

// --- The kernel log -------------------------------------------------------------------------

struct KernelRecord {
    int level = 6;     // 0 (emerg) .. 7 (debug)
    std::string text;  // the message, without the record's prefix and dictionary
    int facility = 0;  // 0: the kernel's own; user space writing to /dev/kmsg is 1 or more
};

// One /dev/kmsg record: "<prio>,<seq>,<usec>,<flags>;<text>\n[ KEY=value\n]...".
std::optional<KernelRecord> parse_kmsg_record(std::string_view record);

// The kernel log from the moment this is made on: /dev/kmsg, opened at its end and read
// without blocking. Without /dev/kmsg it stays empty and fd() is -1.
class KernelLog {
  public:
    KernelLog();
    int fd() const { return fd_.get(); }
    void read_new();
    const std::vector<KernelRecord>& records() const { return records_; }

  private:
    Fd fd_;
    std::vector<KernelRecord> records_;
};

// --- The kernel's words, classified -------------------------------------------------------

enum class AttachErrorKind {
    Busy,              // another sched_ext scheduler is attached (EBUSY)
    MissingKfunc,      // the program calls a kfunc this kernel does not have
    RefusedOption,     // the kernel refused a setting (E2BIG, EINVAL)
    VerifierRejected,  // the BPF verifier rejected a program
    Exited,            // it exited before attaching, for another reason
    NotAttached,       // it ran but the kernel did not attach it in time
    WrongName,         // something attached, under another ops name than the Scheduler's name
};

const char* attach_error_kind_name(AttachErrorKind kind);

struct AttachError {
    AttachErrorKind kind = AttachErrorKind::Exited;
    std::string reason;        // one line: what the kernel or libbpf said
    std::string verifier_log;  // VerifierRejected: the whole log, as printed
    bool log_cut = false;      // VerifierRejected: the log printed is not the whole log
};

// Why a scheduler did not attach, from its output (where libbpf prints) and the kernel log.
// `attached_ops` is what root/ops named at the time: on EBUSY, the scheduler in the way.
AttachError classify_attach_failure(std::string_view output,
                                    const std::vector<KernelRecord>& kernel,
                                    std::string_view attached_ops, bool output_truncated = false);

enum class EjectionKind {
    Stall,         // the watchdog found a runnable task that did not run
    BpfError,      // the BPF program raised an error (scx_bpf_error)
    RuntimeError,  // the kernel found the scheduler misbehaving
    Unregistered,  // it left: its loader closed it, or BPF or the kernel unregistered it
    Other,
};

struct Ejection {
    EjectionKind kind = EjectionKind::Other;
    std::string scheduler;           // the ops name the kernel printed
    std::string reason;              // "runnable task stall"
    std::string message;             // "stallme[119] failed to run for 2.868s"
    bool error = false;              // printed at error level: not a clean unregistration
    std::vector<std::string> lines;  // the kernel's lines about it, backtrace included
};

// The last "BPF scheduler ... disabled (reason)" the kernel printed, with what followed it.
std::optional<Ejection> find_ejection(const std::vector<KernelRecord>& kernel);

// Warnings, BUGs, oopses and panics: each one's first line with the few lines after it.
std::vector<std::string> kernel_problems(const std::vector<KernelRecord>& kernel);

// "W (kernel warning)" for each taint bit set in `after` but not in `before`.
std::string describe_new_taint(unsigned long before, unsigned long after);

// What the kernel said about a scheduler it disabled.
struct KernelVerdict {
    std::optional<Ejection> ejection;
    std::vector<std::string> messages;  // its lines, or why there are none
    // "<reason>: <message>" in the kernel's words; empty when it gave none.
    std::string reason() const;
};

// Waits (bounded) for sched_ext to be `disabled`, then a little more: the kernel prints why it
// disabled a scheduler from deferred work.
KernelVerdict await_kernel_verdict(KernelLog& log);

// --- sched_ext's sysfs --------------------------------------------------------------------

bool kernel_has_sched_ext();
// The first line of /sys/kernel/sched_ext/<file>; empty when it cannot be read.
std::string read_sched_ext(const char* file);
// The attached scheduler's ops name (root/ops); empty when none is attached.
std::string attached_ops();
// Whether the ops name the kernel shows is the Scheduler's: the kernel may append a suffix.
bool ops_names(std::string_view ops, std::string_view name);
// What messages call a scheduler: its name, or (unnamed: any ops name is accepted) its binary.
std::string scheduler_label(const Scheduler& s);

// --- A running scheduler ------------------------------------------------------------------

// A start that did not end attached: why, and what the scheduler printed.
struct AttachFailure {
    AttachError error;
    PayloadReport report;
};

class RunningScheduler;
using StartResult = std::variant<RunningScheduler, AttachFailure>;

class RunningScheduler {
  public:
    // Starts `s` in its own process group and waits until the kernel has attached it: state
    // `enabled`, root/ops naming it (any name, when `s` has none), enable_seq moved. `log`
    // must be open from before.
    static StartResult start(const Scheduler& s, KernelLog& log);

    const std::string& ops() const { return ops_; }
    int pidfd() const { return handle_->pidfd(); }
    // Reads its output and notices its end; the exit once it has ended.
    std::optional<PayloadExit> poll();
    // The kernel still has it attached: state `enabled`.
    bool attached() const;

    // After it died or left `enabled`, `body_s` seconds into the test body (none: before the
    // body): waits for the kernel to finish (and print why), stops what is left of it and
    // says what happened.
    std::vector<std::string> report_loss(KernelLog& log, std::optional<double> body_s);
    // The normal end: SIGTERM, then SIGKILL after a grace (a failure: it ignored the stop);
    // waits for `disabled`. Empty when it went cleanly, else what went wrong.
    std::vector<std::string> stop(KernelLog& log);

  private:
    RunningScheduler(const Scheduler& s, PayloadHandle handle, std::string ops);
    PayloadReport end_process(std::chrono::milliseconds own_exit_grace);
    std::vector<std::string> output_messages(const PayloadReport& r) const;

    const Scheduler* scheduler_;
    std::optional<PayloadHandle> handle_;
    std::string ops_;
};

// The messages of a failed start: kind and reason, then the scheduler's output.
std::vector<std::string> describe_attach_failure(const Scheduler& s, const AttachFailure& f);

}  // namespace ktstr::suite
