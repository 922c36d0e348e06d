#include <string>

#include "ktstr/test.hpp"

namespace ktstr {
namespace {

std::vector<TestCase>& registry() {
    static std::vector<TestCase> tests;
    return tests;
}

}  // namespace

const std::vector<TestCase>& registered_tests() {
    return registry();
}

TestRegistrar::TestRegistrar(std::string_view name, const TestAttrs& attrs, TestBody body,
                             std::string_view file, int line) {
    registry().push_back({name, attrs, body, file, line});
}

PayloadRun Ctx::payload(const Payload& p) const {
    std::string binary(p.is_scheduler() ? p.scheduler()->spec.binary : p.binary());
    PayloadRun run(binary);
    for (auto a : p.default_args) run.arg(std::string(a));
    if (p.uses_parent_pgrp) run.uses_parent_pgrp();
    return run;
}

}  // namespace ktstr
