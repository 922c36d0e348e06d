// A suite that fails on purpose, to show what a failure looks like. It is
// built, but not part of the default test run.
#include <ktstr/test.hpp>

#include <stdexcept>

KTSTR_TEST(expects_wrong_exit_code, .timeout_s = 60) {
    auto report = ktstr::PayloadRun("sh").args({"-c", "echo about to fail >&2; exit 3"}).run();
    return ktstr::AssertResult::pass().expect(report.exit_code == 0,
                                              "sh " + report.describe() + ": " + report.err.bytes);
}

KTSTR_TEST(throws, .timeout_s = 60) {
    throw std::runtime_error("the body threw this on purpose");
}
