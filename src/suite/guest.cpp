// The guest half of a suite: inside the VM, start the test's scheduler, run
// its body, stop the scheduler, and leave the result where init finds it.
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "ktstr/error.hpp"
#include "ktstr/fd.hpp"
#include "suite.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace ktstr::suite {
namespace {

constexpr auto kAttachTimeout = 20s;
constexpr const char* kScxState = "/sys/kernel/sched_ext/state";

std::string read_trimmed(const fs::path& p) {
    std::ifstream in(p);
    std::string s;
    std::getline(in, s);
    return s;
}

void run_commands(const Words& commands, const char* what) {
    for (auto c : commands) {
        auto r = PayloadRun("/bin/sh").arg("-c").arg(std::string(c)).run();
        if (!r.success())
            throw Error(std::string(what) + " command " + quoted(std::string(c)) + " " +
                        r.describe() + ": " + r.out.bytes + r.err.bytes);
    }
}

// A running sched_ext scheduler, stopped when it goes out of scope.
class RunningScheduler {
public:
    explicit RunningScheduler(const Scheduler& s) : scheduler_(s) {
        if (!fs::exists(kScxState))
            throw Error("this kernel has no sched_ext (" + std::string(kScxState) + " missing)");
        auto state = read_trimmed(kScxState);
        if (state != "disabled")
            throw Error("another scheduler is attached (sched_ext state: " + state + ")");
        PayloadRun run(guest_binary_path(s.spec.binary));
        for (auto a : s.args) run.arg(std::string(a));
        if (!s.config_file.empty())
            run.arg(std::string(s.config_arg)).arg(guest_binary_path(s.config_file));
        handle_.emplace(run.spawn());
        wait_attached();
    }
    ~RunningScheduler() {
        if (handle_) handle_->terminate(2000ms);
    }

    // Stops it and says how it ended; throws when it died or was ejected.
    void stop() {
        auto state = read_trimmed(kScxState);
        if (auto exit = handle_->try_wait())
            throw Error("scheduler " + std::string(scheduler_.name) + " died during the test (" +
                        exit->describe() + ")" + output());
        if (state != "enabled")
            throw Error("scheduler " + std::string(scheduler_.name) +
                        " was ejected during the test (state " + state + ")" + output());
        handle_->terminate(5000ms);
        auto report = handle_->wait_and_capture();
        handle_.reset();
        for (int i = 0; i < 100 && read_trimmed(kScxState) != "disabled"; ++i)
            std::this_thread::sleep_for(50ms);
    }

private:
    void wait_attached() {
        auto until = std::chrono::steady_clock::now() + kAttachTimeout;
        while (std::chrono::steady_clock::now() < until) {
            if (read_trimmed(kScxState) == "enabled") return;
            if (auto exit = handle_->wait_for(50ms))
                throw Error("scheduler " + std::string(scheduler_.name) +
                            " exited before attaching (" + exit->describe() + ")" + output());
        }
        throw Error("scheduler " + std::string(scheduler_.name) + " did not attach within " +
                    std::to_string(kAttachTimeout.count()) + " s");
    }
    std::string output() {
        if (!handle_) return {};
        handle_->kill();
        auto r = handle_->wait_and_capture();
        handle_.reset();
        return "\n--- scheduler stdout ---\n" + r.out.bytes + "\n--- scheduler stderr ---\n" +
               r.err.bytes;
    }

    const Scheduler& scheduler_;
    std::optional<PayloadHandle> handle_;
};

AssertResult run_body(const TestCase& t) {
    Ctx ctx(Topology::parse(t.attrs.topology), t.attrs.scheduler);
    const Scheduler* s = t.attrs.scheduler ? t.attrs.scheduler->scheduler() : nullptr;
    if (!s || s->is_eevdf()) return t.body(ctx);
    if (s->spec.kind == SchedulerSpec::Kind::KernelBuiltin) {
        run_commands(s->spec.enable, "enable");
        auto r = t.body(ctx);
        run_commands(s->spec.disable, "disable");
        return r;
    }
    RunningScheduler running(*s);
    auto r = t.body(ctx);
    running.stop();
    return r;
}

const char* kPackagingHint =
    "; to package it, list it in the payload's include_files (ktstr::binary_payload does "
    "this) or in the test's extra_include_files";

}  // namespace

std::string guest_binary_path(std::string_view host_or_name) {
    return "/include-files/" + fs::path(host_or_name).filename().string();
}

nlohmann::json result_to_json(const AssertResult& r) {
    static constexpr const char* names[] = {"pass", "fail", "skip"};
    return {{"status", names[int(r.status())]}, {"messages", r.messages()}};
}

int run_in_guest(const std::string& name) {
    const TestCase* test = nullptr;
    for (const auto& t : registered_tests())
        if (t.name == name) test = &t;
    nlohmann::json result;
    if (!test) {
        result = result_to_json(AssertResult::fail("no test named " + quoted(name)));
    } else {
        try {
            result = result_to_json(run_body(*test));
        } catch (const std::exception& e) {
            std::string text = e.what();
            if (text.rfind("cannot find payload binary", 0) == 0) text += kPackagingHint;
            result = result_to_json(AssertResult::fail("the test threw: " + text));
        }
    }
    const char* path = std::getenv("KTSTR_RESULT_FILE");
    std::ofstream(path && *path ? path : "/run/ktstr-result.json") << result.dump() << "\n";
    return result["status"] == "fail" ? 1 : 0;
}

}  // namespace ktstr::suite
