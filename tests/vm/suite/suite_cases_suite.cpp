// The suite runner itself, in real VMs: a body past its timeout, and suites run side by side.
// CMakeLists.txt next to this file runs each case and checks how it ended.
#include <fstream>
#include <iostream>
#include <string>

#include <ktstr/test.hpp>

using ktstr::AssertResult;
using ktstr::PayloadRun;

// Fails on purpose: its payload would sleep for five minutes, the test allows 5 s.
KTSTR_TEST(body_past_timeout, .timeout_s = 5) {
    auto report = PayloadRun("sleep").arg("300").run();
    return AssertResult::fail("the body was not stopped at its timeout: sleep " +
                              report.describe());
}

// Prints which boot it ran in, so that two suites run at once can be told apart.
KTSTR_TEST(concurrent_marker, .timeout_s = 60) {
    std::ifstream in("/proc/sys/kernel/random/boot_id");
    std::string boot_id;
    std::getline(in, boot_id);
    std::cout << "boot_id=" << boot_id << "\n" << std::flush;
    return AssertResult::pass().expect(boot_id.size() == 36, "no boot id: " + boot_id);
}
