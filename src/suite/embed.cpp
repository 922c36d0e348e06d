// Running KTSTR_TESTs from another framework's test cases.
#include <cstring>

#include "host.hpp"
#include "ktstr/error.hpp"

namespace ktstr {

bool is_guest_invocation(int argc, char** argv) {
    return argc == 3 && std::strcmp(argv[1], "--ktstr-guest-test") == 0;
}

VmTestVerdict run_test_in_vm(std::string_view name, const VmRunOptions& options) {
    const TestCase* test = nullptr;
    for (const auto& t : registered_tests())
        if (t.name == name) test = &t;
    if (!test) throw Error("no KTSTR_TEST named " + quoted(std::string(name)));
    suite::HostOptions o;
    o.kernel = options.kernel;
    o.accel = options.accel;
    o.verbose = options.verbose;
    auto kernel = choose_kernel(o.kernel);
    auto accel = choose_accel(o.accel);
    auto outcome = suite::run_one(*test, o, kernel, accel, -1);
    VmTestVerdict v;
    v.seconds = outcome.seconds;
    v.infrastructure_error = outcome.status == suite::Status::Error;
    v.status = outcome.status == suite::Status::Pass   ? AssertResult::Status::Pass
               : outcome.status == suite::Status::Skip ? AssertResult::Status::Skip
                                                       : AssertResult::Status::Fail;
    if (v.status != AssertResult::Status::Pass) v.report = suite::failure_report(outcome);
    return v;
}

}  // namespace ktstr
