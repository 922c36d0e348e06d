#include <ktstr/test.hpp>

KTSTR_TEST(consumer_true, .timeout_s = 30) {
    return ktstr::AssertResult::pass().expect(ktstr::PayloadRun("true").run().success(), "true");
}
