// Declaring tests. Each KTSTR_TEST body runs inside its own freshly booted VM,
// under the scheduler the test names (EEVDF when it names none):
//
//   inline constexpr auto stress = ktstr::binary_payload("stress-ng");
//
//   KTSTR_TEST(stress_runs, .payload = &stress, .topology = "1n1l2c1t", .timeout_s = 60) {
//       auto report = ctx.payload(stress).args({"--cpu", "2", "--timeout", "3"}).run();
//       if (!report.success()) return ktstr::AssertResult::fail(report.describe());
//       return ktstr::AssertResult::pass();
//   }
//
// A suite is an executable that links ktstr::suite (which brings main), or
// calls ktstr::run_main(argc, argv) from its own main.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "ktstr/fixed_list.hpp"
#include "ktstr/payload.hpp"
#include "ktstr/payload_run.hpp"
#include "ktstr/topology.hpp"

namespace ktstr {

// What a test body returns.
class AssertResult {
  public:
    enum class Status { Pass, Fail, Skip };

    static AssertResult pass() { return AssertResult(Status::Pass, {}); }
    static AssertResult fail(std::string message) { return AssertResult(Status::Fail, {message}); }
    static AssertResult fail(std::vector<std::string> messages) {
        return AssertResult(Status::Fail, std::move(messages));
    }
    static AssertResult skip(std::string reason) { return AssertResult(Status::Skip, {reason}); }

    Status status() const { return status_; }
    const std::vector<std::string>& messages() const { return messages_; }
    bool passed() const { return status_ == Status::Pass; }

    // Adds a failure message; a passing result becomes a failure.
    AssertResult& expect(bool condition, std::string message) {
        if (!condition) {
            status_ = Status::Fail;
            messages_.push_back(std::move(message));
        }
        return *this;
    }

  private:
    AssertResult(Status s, std::vector<std::string> m) : status_(s), messages_(std::move(m)) {}
    Status status_;
    std::vector<std::string> messages_;
};

// A test's attributes, written as designated initializers in KTSTR_TEST.
struct TestAttrs {
    const Payload* scheduler = nullptr;  // a scheduler payload; EEVDF when null
    const Payload* payload = nullptr;    // the primary binary payload
    FixedList<const Payload*, 8> workloads{};
    Words extra_include_files{};
    std::string_view topology = "1n1l2c1t";
    int memory_mb = 0;       // 0: sized from the initramfs
    double timeout_s = 120;  // the body's own run time, boot excluded
    Words kernel_args{};
};

// What a test body gets, inside the guest.
class Ctx {
  public:
    Ctx(Topology topology, const Payload* scheduler) : topology_(topology), scheduler_(scheduler) {}

    const Topology& topology() const { return topology_; }
    const Payload* scheduler() const { return scheduler_; }
    // A run of `p` with its default args filled in; add to it and run() or spawn().
    PayloadRun payload(const Payload& p) const;

  private:
    Topology topology_;
    const Payload* scheduler_;
};

// The payload's default checks against a finished run: the exit code, and for
// JSON output, fields that must exist or lie in a range. Passes when there are
// no checks and the payload exited 0.
AssertResult check_payload(const Payload& p, const PayloadReport& report);

using TestBody = AssertResult (*)(Ctx&);

struct TestCase {
    std::string_view name;
    TestAttrs attrs;
    TestBody body;
    std::string_view file;
    int line;
};

// Every KTSTR_TEST of the program, in registration order.
const std::vector<TestCase>& registered_tests();

struct TestRegistrar {
    TestRegistrar(std::string_view name, const TestAttrs& attrs, TestBody body,
                  std::string_view file, int line);
};

// The suite's entry point: host mode (list, select, boot a VM per test,
// report) or, inside the guest, the body of one test.
int run_main(int argc, char** argv);

// For suites driven by another framework's runner (Catch2, GoogleTest): its
// main must hand the guest's invocation to run_main, and its test cases call
// run_test_in_vm. See examples/catch2_suite.cpp.
bool is_guest_invocation(int argc, char** argv);

struct VmRunOptions {
    std::string kernel;  // as --kernel; empty: the usual discovery
    std::string accel;   // as --accel
    bool verbose = false;
};

struct VmTestVerdict {
    AssertResult::Status status = AssertResult::Status::Fail;
    bool infrastructure_error = false;  // the VM failed, not the test
    std::string report;                 // what failed, with output and console tails
    double seconds = 0;
};

// Boots one VM for the test named `name` and returns its verdict.
VmTestVerdict run_test_in_vm(std::string_view name, const VmRunOptions& options = {});

}  // namespace ktstr

#define KTSTR_TEST(name, ...)                                                                 \
    static ::ktstr::AssertResult ktstr_test_body_##name(::ktstr::Ctx& ctx);                   \
    static const ::ktstr::TestRegistrar ktstr_test_registrar_##name{                          \
        #name, ::ktstr::TestAttrs{__VA_ARGS__}, &ktstr_test_body_##name, __FILE__, __LINE__}; \
    static ::ktstr::AssertResult ktstr_test_body_##name([[maybe_unused]] ::ktstr::Ctx& ctx)
