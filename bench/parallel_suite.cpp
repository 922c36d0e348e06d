// Eight one-vCPU tests for bench/parallel.sh (-j 1 against -j 2), and for the VM test
// that checks each run's phases in the JUnit output. Each body keeps its vCPU busy for
// about a second, so the payload is a real part of the run.
#include <chrono>

#include <ktstr/test.hpp>

namespace {

ktstr::AssertResult spin_one_second() {
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    volatile unsigned long n = 0;
    while (std::chrono::steady_clock::now() < until) n = n + 1;
    return n > 0 ? ktstr::AssertResult::pass() : ktstr::AssertResult::fail("no progress");
}

}  // namespace

#define KTSTR_BENCH_TEST(name)                                  \
    KTSTR_TEST(name, .topology = "1n1l1c1t", .timeout_s = 60) { \
        return spin_one_second();                               \
    }

KTSTR_BENCH_TEST(one_vcpu_0)
KTSTR_BENCH_TEST(one_vcpu_1)
KTSTR_BENCH_TEST(one_vcpu_2)
KTSTR_BENCH_TEST(one_vcpu_3)
KTSTR_BENCH_TEST(one_vcpu_4)
KTSTR_BENCH_TEST(one_vcpu_5)
KTSTR_BENCH_TEST(one_vcpu_6)
KTSTR_BENCH_TEST(one_vcpu_7)
