// A payload's grandchild that calls setsid and is orphaned leaves its payload's process group,
// and without a cgroup no kill of the payload reaches it. The harness must kill it once the
// body has ended and fail the test naming it. Registered by hand: this test must fail.
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include <fmt/core.h>

#include <ktstr/test.hpp>

using namespace std::chrono_literals;

KTSTR_TEST(orphan_outliving_the_body_is_killed_and_named, .timeout_s = 120) {
    // The setsid'd shell starts the sleep and exits at once: the sleep is an orphan in a session
    // of its own, reparented to init.
    auto report = ktstr::PayloadRun("sh")
                      .args({"-c",
                             "setsid sh -c 'sleep 1000 & echo $! > /tmp/orphan'; "
                             "while [ ! -s /tmp/orphan ]; do sleep 0.1; done"})
                      .run();
    pid_t orphan = 0;
    std::ifstream("/tmp/orphan") >> orphan;
    auto entry = orphan > 0 ? ktstr::process_entry(orphan) : std::nullopt;
    bool escaped = entry && entry->alive() && entry->ppid == 1 && entry->name == "sleep";
    // The harness's message names the pid; this line ties it to the orphan.
    fmt::print("orphan sleep {} outlived its payload: {}\n", orphan, escaped ? "yes" : "no");
    return ktstr::AssertResult::pass()
        .expect(report.exit_code == 0, "the shell " + report.describe())
        .expect(escaped, "the sleep did not outlive its payload as an orphan of init");
}
