// The host half of a suite: pick tests, boot one VM per test (several at
// once), and report verdicts, a summary and JUnit XML.
#include <fnmatch.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "host.hpp"
#include "ktstr/error.hpp"
#include "ktstr/fd.hpp"
#include "ktstr/guest_image.hpp"
#include "ktstr/initramfs_cache.hpp"
#include "ktstr/log.hpp"
#include "ktstr/search_path.hpp"
#include "scheduler_run.hpp"
#include "suite.hpp"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace ktstr::suite {
namespace {

// From a body's timeout to the guest's report of it: the kill, the kernel checks, the result.
constexpr double kBodyTimeoutReportAllowance = 15;

fs::path suite_binary() {
    return fs::read_symlink("/proc/self/exe");
}

std::string tail_of(const std::string& text, size_t max_bytes) {
    return text.size() <= max_bytes ? text : "..." + text.substr(text.size() - max_bytes);
}

// Runs one test in its own VM.
class TestVm {
  public:
    TestVm(const TestCase& t, const HostOptions& o, const KernelInfo& k, const AccelChoice& a,
           int cancel_fd)
        : test_(t), options_(o), kernel_(k), accel_(a), cancel_fd_(cancel_fd) {}

    TestOutcome run() {
        TestOutcome out;
        out.test = &test_;
        auto t0 = Clock::now();
        try {
            boot_and_judge(out);
        } catch (const std::exception& e) {
            out.status = Status::Error;
            out.messages.push_back(e.what());
        }
        out.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
        return out;
    }

  private:
    void boot_and_judge(TestOutcome& out) {
        TempDir dir("ktstr-test");
        VmSpec spec;
        spec.kernel = kernel_;
        spec.accel = accel_;
        spec.topology = Topology::parse(test_.attrs.topology);
        auto t_pack = Clock::now();
        auto layout = guest_layout(include_specs(test_), kernel_);
        auto cached =
            cached_initramfs(layout, initramfs_cache_dir(),
                             options_.compression.value_or(default_compression(accel_.accel)));
        out.ms_pack = std::chrono::duration<double, std::milli>(Clock::now() - t_pack).count();
        spec.initramfs = cached.path;
        spec.memory_mb = test_.attrs.memory_mb ? test_.attrs.memory_mb
                                               : memory_for_initramfs(cached.unpacked_bytes);
        spec.cmdline_extra = kernel_words(test_);
        spec.verbose = options_.verbose;
        spec.cancel_fd = cancel_fd_;
        Fd out_fd = Fd::open((dir.path() / "stdout").string(), O_WRONLY | O_CREAT | O_TRUNC);
        Fd err_fd = Fd::open((dir.path() / "stderr").string(), O_WRONLY | O_CREAT | O_TRUNC);
        spec.stdout_fd = out_fd.get();
        spec.stderr_fd = err_fd.get();

        protocol::Job job;
        job.command = shell_quote("/include-files/" + suite_binary().filename().string()) +
                      " --ktstr-guest-test " + shell_quote(std::string(test_.name));
        job.timeout_s = job_timeout_s(test_);
        job.verbose = options_.verbose;
        job.path = guest_path(layout);
        out.vm = run_vm(spec, job);
        out.stdout_tail =
            tail_of(read_file_if_present((dir.path() / "stdout").c_str()).value_or(""), 4000);
        out.stderr_tail =
            tail_of(read_file_if_present((dir.path() / "stderr").c_str()).value_or(""), 4000);
        judge(out);
    }

    void judge(TestOutcome& out) {
        const auto& vm = out.vm;
        if (vm.outcome != Outcome::Verdict) {
            out.status = Status::Error;
            out.messages.push_back(std::string(outcome_name(vm.outcome)) + ": " + vm.reason);
            return;
        }
        const auto& v = vm.verdict;
        if (v.timed_out) {
            out.status = Status::Fail;
            out.messages.push_back(
                fmt::format("timed out after {:.0f} s and was killed", job_timeout_s(test_)));
            return;
        }
        if (v.test_result.empty()) {
            out.status = Status::Fail;
            out.messages.push_back("the test body reported no result (" +
                                   (v.signal
                                        ? "killed by signal " + std::to_string(*v.signal)
                                        : "exit code " + std::to_string(v.exit_code.value_or(-1))) +
                                   (v.error.empty() ? "" : ": " + v.error) + ")");
            return;
        }
        auto r = nlohmann::json::parse(v.test_result, nullptr, false);
        auto status = r.is_object() ? r.value("status", "") : "";
        out.status = status == "pass"   ? Status::Pass
                     : status == "skip" ? Status::Skip
                                        : Status::Fail;
        if (r.is_object()) out.scheduler = r.value("scheduler", "");
        if (r.is_object() && r.contains("messages"))
            for (const auto& m : r["messages"]) out.messages.push_back(m.get<std::string>());
    }

    const TestCase& test_;
    const HostOptions& options_;
    const KernelInfo& kernel_;
    const AccelChoice& accel_;
    int cancel_fd_;
};

}  // namespace

std::string shell_quote(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

std::vector<IncludeSpec> include_specs(const TestCase& t) {
    std::vector<IncludeSpec> specs = {{suite_binary().string(), "the suite binary"}};
    auto add_payload = [&](const Payload* p, const std::string& role) {
        if (!p) return;
        auto source = role + " " + std::string(p->name);
        for (auto f : p->include_files) specs.push_back({std::string(f), source});
        if (auto s = p->scheduler()) {
            if (s->spec.kind == SchedulerSpec::Kind::Path ||
                s->spec.kind == SchedulerSpec::Kind::Discover)
                specs.push_back({resolve_scheduler_binary(*s), source});
            if (!s->config_file.empty()) specs.push_back({std::string(s->config_file), source});
            for (auto f : s->include_files) specs.push_back({std::string(f), source});
        }
    };
    add_payload(t.attrs.scheduler, "scheduler");
    add_payload(t.attrs.payload, "payload");
    for (auto w : t.attrs.workloads) add_payload(w, "workload");
    for (auto f : t.attrs.extra_include_files)
        specs.push_back({std::string(f), "extra_include_files of " + std::string(t.name)});
    return specs;
}

double job_timeout_s(const TestCase& t) {
    // The guest kills a body past its timeout and reports it with the kernel's checks; the
    // guest's own deadline is a backstop behind that, so it never cuts the report short.
    double body = t.attrs.timeout_s + kBodyTimeoutReportAllowance;
    const Scheduler* s = t.attrs.scheduler ? t.attrs.scheduler->scheduler() : nullptr;
    if (!s || s->is_eevdf()) return body;
    // The kernel's watchdog may take 1.5 times its timeout to eject a stalled scheduler, and
    // the guest then waits for the kernel's reason and the scheduler's exit dump.
    auto seconds = [](auto d) { return std::chrono::duration<double>(d).count(); };
    return body + seconds(kSchedulerAttachTimeout) + 1.5 * seconds(kSchedExtWatchdogMax) +
           seconds(kSchedulerEndAllowance);
}

std::vector<std::string> kernel_words(const TestCase& t) {
    std::vector<std::string> words;
    for (auto w : t.attrs.kernel_args) words.emplace_back(w);
    if (auto s = t.attrs.scheduler ? t.attrs.scheduler->scheduler() : nullptr) {
        for (auto kv : s->sysctls) words.push_back("sysctl." + std::string(kv));
        for (auto w : s->kernel_args) words.emplace_back(w);
    }
    return words;
}

std::string resolve_scheduler_binary(const Scheduler& s) {
    std::string b(s.spec.binary);
    if (s.spec.kind == SchedulerSpec::Kind::Path) {
        if (!fs::exists(b))
            throw Error("cannot find scheduler " + quoted(std::string(s.name)) + " at path " +
                        quoted(b));
        return b;
    }
    std::vector<fs::path> tried;
    if (const char* env = std::getenv("KTSTR_SCHEDULER"); env && *env) tried.push_back(env);
    tried.push_back(suite_binary().parent_path() / b);
    tried.push_back(fs::path(KTSTR_BUILD_DIR) / b);
    tried.push_back(cache_dir() / "scx" / "bin" / b);
    const char* path = std::getenv("PATH");
    for (const auto& dir : split_search_path(path ? path : "")) tried.push_back(fs::path(dir) / b);
    std::string list;
    for (const auto& p : tried) {
        if (::access(p.c_str(), X_OK) == 0 && fs::is_regular_file(p)) return p.string();
        list += "\n  " + p.string();
    }
    throw Error("cannot discover scheduler " + quoted(b) + "; tried:" + list);
}

bool in_shard(std::string_view name, int index, int count) {
    uint64_t h = 1469598103934665603ULL;  // FNV-1a: stable across runs and machines
    for (unsigned char c : name) h = (h ^ c) * 1099511628211ULL;
    return static_cast<int>(h % static_cast<uint64_t>(count)) == index;
}

std::vector<const TestCase*> select_tests(const HostOptions& o) {
    std::vector<const TestCase*> out;
    for (const auto& t : registered_tests()) {
        std::string name(t.name);
        if (!o.exact.empty() && name != o.exact) continue;
        if (!o.filter.empty() && ::fnmatch(o.filter.c_str(), name.c_str(), 0) != 0) continue;
        if (!in_shard(name, o.shard_index, o.shard_count)) continue;
        out.push_back(&t);
    }
    return out;
}

TestOutcome run_one(const TestCase& test, const HostOptions& o, const KernelInfo& kernel,
                    const AccelChoice& accel, int cancel_fd) {
    return TestVm(test, o, kernel, accel, cancel_fd).run();
}

int vm_thread_cost(Accel accel, const Topology& topology) {
    return accel == Accel::Kvm ? topology.cpus() : 1;
}

std::vector<TestOutcome> run_tests(const std::vector<const TestCase*>& tests, const HostOptions& o,
                                   const KernelInfo& kernel, const AccelChoice& accel,
                                   int cancel_fd,
                                   const std::function<void(const TestOutcome&)>& on_done) {
    std::vector<int> costs;
    for (auto t : tests) {
        int cost = 1;
        try {
            if (!o.oversubscribe)
                cost = vm_thread_cost(accel.accel, Topology::parse(t->attrs.topology));
        } catch (const Error&) {
            // A bad topology fails in run_one, with the test's name.
        }
        costs.push_back(cost);
    }

    // Tests start in order, each once its cost fits in the budget.
    std::vector<TestOutcome> results(tests.size());
    HostBudget budget(o.jobs);
    size_t next = 0;
    std::mutex m;
    std::condition_variable freed;
    auto worker = [&] {
        for (;;) {
            size_t i;
            {
                std::unique_lock lock(m);
                freed.wait(lock, [&] { return next >= tests.size() || budget.fits(costs[next]); });
                if (next >= tests.size()) return;
                i = next++;
                budget.take(costs[i]);
            }
            results[i] = run_one(*tests[i], o, kernel, accel, cancel_fd);
            {
                std::lock_guard lock(m);
                budget.give(costs[i]);
                on_done(results[i]);
            }
            freed.notify_all();
        }
    };
    std::vector<std::thread> threads;
    int n = std::max(1, std::min<int>(o.jobs, static_cast<int>(tests.size())));
    for (int i = 0; i < n; ++i) threads.emplace_back(worker);
    for (auto& t : threads) t.join();
    return results;
}

}  // namespace ktstr::suite
