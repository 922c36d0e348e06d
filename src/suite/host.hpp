// The host half of a suite runner.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "ktstr/compression.hpp"
#include "ktstr/include_files.hpp"
#include "ktstr/kernel.hpp"
#include "ktstr/qemu.hpp"
#include "ktstr/test.hpp"
#include "ktstr/vm_run.hpp"

namespace ktstr::suite {

struct HostOptions {
    bool list = false;
    std::string filter;  // a glob over test names
    std::string exact;
    int jobs = 1;                            // host threads the running VMs may keep busy (-j)
    bool oversubscribe = false;              // -j counts VMs, whatever each one costs
    std::optional<Compression> compression;  // unset: the accelerator's default
    std::string kernel;
    std::string accel;
    bool verbose = false;
    std::string junit;
    int shard_index = 0;
    int shard_count = 1;
};

enum class Status { Pass, Fail, Skip, Error };

struct TestOutcome {
    const TestCase* test = nullptr;
    Status status = Status::Error;
    std::vector<std::string> messages;
    std::string scheduler;  // what the guest ran the body under: "eevdf" or the ops name
    double seconds = 0;
    double ms_pack = 0;  // resolving the include files and getting the initramfs
    std::string stdout_tail, stderr_tail;
    VmResult vm;
};

// `s` as one word for `sh -c`.
std::string shell_quote(const std::string& s);

// Every include file a test needs: the suite binary, its scheduler's binary
// and config, its payloads' and workloads' include_files, extra_include_files.
std::vector<IncludeSpec> include_specs(const TestCase& t);

// The guest's time for the whole job: the body's timeout, plus, under a sched_ext scheduler,
// room to attach it and for the kernel's watchdog to eject it and the guest to report why.
double job_timeout_s(const TestCase& t);

// Kernel command-line words from the test and its scheduler's sysctls.
std::vector<std::string> kernel_words(const TestCase& t);

// A Discover or Path scheduler's host binary. Discover looks at
// $KTSTR_SCHEDULER, the suite binary's directory, the build tree, the scx
// cache (cache_dir()/scx/bin), then PATH; the error lists every place tried.
std::string resolve_scheduler_binary(const Scheduler& s);

// Deterministic sharding: each name falls in exactly one of `count` shards.
bool in_shard(std::string_view name, int index, int count);

std::vector<const TestCase*> select_tests(const HostOptions& o);

// Host threads a VM keeps busy: one per vCPU under KVM; one in all under TCG, which runs
// every vCPU on a single thread (thread=single, see qemu.cpp).
int vm_thread_cost(Accel accel, const Topology& topology);

// The -j budget of host threads. A VM starts when its cost fits beside the running ones;
// one costing more than the whole budget starts only when nothing else runs.
class HostBudget {
  public:
    explicit HostBudget(int threads) : total_(threads < 1 ? 1 : threads) {}
    bool fits(int cost) const { return used_ == 0 || used_ + cost <= total_; }
    void take(int cost) { used_ += cost; }
    void give(int cost) { used_ -= cost; }
    int used() const { return used_; }

  private:
    int total_;
    int used_ = 0;
};

// One test in its own VM.
TestOutcome run_one(const TestCase& test, const HostOptions& o, const KernelInfo& kernel,
                    const AccelChoice& accel, int cancel_fd);

std::vector<TestOutcome> run_tests(const std::vector<const TestCase*>& tests, const HostOptions& o,
                                   const KernelInfo& kernel, const AccelChoice& accel,
                                   int cancel_fd,
                                   const std::function<void(const TestOutcome&)>& on_done);

// JUnit XML for the outcomes.
std::string junit_xml(const std::vector<TestOutcome>& outcomes, const std::string& suite_name);

const char* status_name(Status s);

// The scheduler the guest reported running the body under, else the one the test names.
std::string scheduler_shown(const TestOutcome& o);

// The report of a test: status, topology, scheduler, messages, output tails, and the console's
// tail, or with `whole_console` all of it that the run kept (-v keeps it).
std::string failure_report(const TestOutcome& o, bool whole_console = false);

}  // namespace ktstr::suite
