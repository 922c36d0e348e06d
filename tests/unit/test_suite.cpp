// The suite runner's host-side logic, without booting anything.
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <set>

#include "../../src/suite/host.hpp"
#include "ktstr/error.hpp"
#include "ktstr/fd.hpp"
#include "ktstr/include_files.hpp"
#include "ktstr/test.hpp"

using Catch::Matchers::ContainsSubstring;
namespace fs = std::filesystem;

namespace {

inline constexpr ktstr::Payload helper_sh = ktstr::binary_payload("sh", {.default_args = {"-c"}});
inline constexpr ktstr::Payload by_hand{
    .name = "by-hand",
    .kind = ktstr::Binary{"true"},
    .include_files = {"true", "sh"},  // "sh" again: collapses with helper_sh's
};
inline constexpr ktstr::Scheduler builtin{
    .name = "builtin",
    .spec = ktstr::SchedulerSpec::kernel_builtin({"echo on"}, {"echo off"}),
    .sysctls = {"kernel.sched_foo=1"},
    .kernel_args = {"nosmt"},
};
inline constexpr auto builtin_payload = ktstr::Payload::for_scheduler(builtin);

}  // namespace

KTSTR_TEST(unit_registered_alpha, .payload = &helper_sh, .topology = "2n2l2c2t", .timeout_s = 7) {
    return ktstr::AssertResult::pass();
}

KTSTR_TEST(unit_registered_beta, .scheduler = &builtin_payload, .workloads = {&helper_sh, &by_hand},
           .extra_include_files = {"/bin/ls"}) {
    return ktstr::AssertResult::skip("not run");
}

const ktstr::TestCase& find_test(std::string_view name) {
    for (const auto& t : ktstr::registered_tests())
        if (t.name == name) return t;
    throw ktstr::Error("no test " + std::string(name));
}

TEST_CASE("KTSTR_TEST registers the name, attributes and body", "[suite]") {
    const auto& t = find_test("unit_registered_alpha");
    CHECK(t.attrs.payload == &helper_sh);
    CHECK(t.attrs.topology == "2n2l2c2t");
    CHECK(t.attrs.timeout_s == 7);
    CHECK(t.attrs.scheduler == nullptr);
    CHECK_THAT(std::string(t.file), ContainsSubstring("test_suite.cpp"));
    ktstr::Ctx ctx(ktstr::Topology::parse(t.attrs.topology), nullptr);
    CHECK(t.body(ctx).passed());
    const auto& b = find_test("unit_registered_beta");
    CHECK(b.attrs.workloads.size() == 2);
    CHECK(b.body(ctx).status() == ktstr::AssertResult::Status::Skip);
}

TEST_CASE("the helper packs the binary first; an aggregate gets nothing injected", "[suite]") {
    STATIC_REQUIRE(helper_sh.include_files.size() == 1);
    STATIC_REQUIRE(helper_sh.include_files[0] == "sh");
    STATIC_REQUIRE(by_hand.include_files[0] == "true");
    static constexpr ktstr::Payload bare{.name = "bare", .kind = ktstr::Binary{"true"}};
    STATIC_REQUIRE(bare.include_files.empty());
    STATIC_REQUIRE(ktstr::Payload::kernel_default().scheduler()->is_eevdf());
}

TEST_CASE("the --filter and --exact flags select by name", "[suite]") {
    ktstr::suite::HostOptions o;
    o.filter = "unit_registered_*";
    auto names = [&] {
        std::set<std::string> s;
        for (auto t : ktstr::suite::select_tests(o)) s.emplace(t->name);
        return s;
    };
    CHECK(names() == std::set<std::string>{"unit_registered_alpha", "unit_registered_beta"});
    o.filter = "*beta";
    CHECK(names() == std::set<std::string>{"unit_registered_beta"});
    o.filter.clear();
    o.exact = "unit_registered_alpha";
    CHECK(names() == std::set<std::string>{"unit_registered_alpha"});
    o.exact = "unit_registered";
    CHECK(names().empty());
}

TEST_CASE("sharding puts every test in exactly one shard, for N = 1..7", "[suite]") {
    std::vector<std::string> names;
    for (int i = 0; i < 200; ++i) names.push_back("test_" + std::to_string(i * 7919));
    for (int n = 1; n <= 7; ++n) {
        std::vector<int> sizes(n);
        for (const auto& name : names) {
            int hits = 0;
            for (int i = 0; i < n; ++i)
                if (ktstr::suite::in_shard(name, i, n)) ++hits, ++sizes[i];
            REQUIRE(hits == 1);
        }
        for (int s : sizes) CHECK(s > 0);  // no shard sits idle on 200 tests
    }
}

TEST_CASE("a test's include files are the union of its declarations", "[suite]") {
    const auto& b = find_test("unit_registered_beta");
    auto specs = ktstr::suite::include_specs(b);
    std::vector<std::string> names;
    for (const auto& s : specs) names.push_back(s.spec);
    CHECK(std::count(names.begin(), names.end(), "sh") == 2);  // two sources, one file
    CHECK(std::count(names.begin(), names.end(), "/bin/ls") == 1);
    // The same (archive path, host file) pair from two payloads collapses.
    auto entries = ktstr::resolve_include_files(specs);
    auto sh = std::count_if(entries.begin(), entries.end(),
                            [](const auto& e) { return e.archive_path == "/include-files/sh"; });
    CHECK(sh == 1);
}

TEST_CASE("two payloads wanting one archive path from different files fail naming both",
          "[suite]") {
    ktstr::TempDir dir;
    fs::create_directories(dir.path() / "a");
    fs::create_directories(dir.path() / "b");
    std::ofstream(dir.path() / "a/tool") << "a";
    std::ofstream(dir.path() / "b/tool") << "b";
    std::vector<ktstr::IncludeSpec> specs = {{(dir.path() / "a/tool").string(), "payload one"},
                                             {(dir.path() / "b/tool").string(), "payload two"}};
    CHECK_THROWS_WITH(ktstr::resolve_include_files(specs),
                      ContainsSubstring("payload one") && ContainsSubstring("payload two"));
}

TEST_CASE("sysctls and kernel words reach the kernel command line", "[suite]") {
    auto words = ktstr::suite::kernel_words(find_test("unit_registered_beta"));
    CHECK(words == std::vector<std::string>{"sysctl.kernel.sched_foo=1", "nosmt"});
}

TEST_CASE("Discover lists every place it tried; Path must exist", "[suite]") {
    ktstr::Scheduler d{.name = "d", .spec = ktstr::SchedulerSpec::discover("no_such_scx_zz")};
    CHECK_THROWS_WITH(ktstr::suite::resolve_scheduler_binary(d),
                      ContainsSubstring("no_such_scx_zz") && ContainsSubstring("tried") &&
                          ContainsSubstring("scx/bin"));
    ktstr::Scheduler p{.name = "p", .spec = ktstr::SchedulerSpec::path("/no/such/sched")};
    CHECK_THROWS_WITH(ktstr::suite::resolve_scheduler_binary(p),
                      ContainsSubstring("/no/such/sched"));
    ktstr::Scheduler sh{.name = "sh", .spec = ktstr::SchedulerSpec::discover("sh")};
    CHECK(fs::path(ktstr::suite::resolve_scheduler_binary(sh)).filename() == "sh");
}

TEST_CASE("check_payload: exit codes and JSON fields", "[suite]") {
    static constexpr ktstr::Payload json{
        .name = "j",
        .kind = ktstr::Binary{"x"},
        .output = ktstr::OutputFormat::Json,
        .checks = {ktstr::Check::exit_code_is(3), ktstr::Check::json_has("/a/b"),
                   ktstr::Check::json_in_range("/n", 1, 2)},
    };
    ktstr::PayloadReport r;
    r.exit_code = 3;
    r.out.bytes = "note: preamble\n{\"a\": {\"b\": 1}, \"n\": 1.5}";
    CHECK(ktstr::check_payload(json, r).passed());
    r.out.bytes = "{\"a\": {}, \"n\": 5}";
    r.exit_code = 0;
    auto bad = ktstr::check_payload(json, r);
    REQUIRE(bad.messages().size() == 3);
    CHECK_THAT(bad.messages()[0], ContainsSubstring("expected exit code 3"));
    CHECK_THAT(bad.messages()[1], ContainsSubstring("/a/b"));
    CHECK_THAT(bad.messages()[2], ContainsSubstring("outside [1, 2]"));
}

TEST_CASE("JUnit XML parses and carries each verdict", "[suite]") {
    using ktstr::suite::Status;
    std::vector<ktstr::suite::TestOutcome> outcomes(3);
    outcomes[0].test = &find_test("unit_registered_alpha");
    outcomes[0].status = Status::Pass;
    outcomes[1].test = &find_test("unit_registered_beta");
    outcomes[1].status = Status::Fail;
    outcomes[1].messages = {"expected <1> & got \"2\"", "bytes \x01 too"};
    outcomes[2].test = &find_test("unit_registered_beta");
    outcomes[2].status = Status::Skip;
    outcomes[2].messages = {"no sched_ext"};
    ktstr::TempDir dir;
    auto file = dir.path() / "junit.xml";
    std::ofstream(file) << ktstr::suite::junit_xml(outcomes, "unit suite");
    // A real XML reader checks the structure a JUnit consumer reads.
    std::string cmd =
        "python3 -c \"import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1])"
        ".getroot(); s = r.find('testsuite'); c = s.findall('testcase'); "
        "assert s.get('tests') == '3' and s.get('failures') == '1' and "
        "s.get('skipped') == '1', s.attrib; assert c[1].find('failure') is not None; "
        "assert c[2].find('skipped') is not None; print('ok')\" " +
        file.string();
    FILE* p = ::popen(cmd.c_str(), "r");
    REQUIRE(p);
    char buf[64] = {};
    auto n = std::fread(buf, 1, sizeof buf - 1, p);
    CHECK(::pclose(p) == 0);
    CHECK(std::string(buf, n) == "ok\n");
}

TEST_CASE("a failure report shows the declared scheduler and payloads as {fmt} prints them",
          "[suite]") {
    ktstr::suite::TestOutcome o;
    o.test = &find_test("unit_registered_beta");
    o.status = ktstr::suite::Status::Fail;
    o.messages = {"it broke"};
    auto report = ktstr::suite::failure_report(o);
    CHECK_THAT(report, ContainsSubstring("  topology 1n1l2c1t, scheduler builtin\n"));
    CHECK_THAT(report, ContainsSubstring(
                           "  scheduler declared: builtin (kernel_builtin (enable: 'echo on', "
                           "disable: 'echo off'), sysctls: kernel.sched_foo=1, kernel args: "
                           "nosmt)\n"));
    CHECK_THAT(report,
               ContainsSubstring("  workload: sh (binary 'sh', args: -c, include files: sh)\n"));
    CHECK_THAT(report,
               ContainsSubstring("  workload: by-hand (binary 'true', include files: true sh)\n"));
    CHECK_THAT(report, ContainsSubstring("  it broke\n"));

    o.test = &find_test("unit_registered_alpha");
    report = ktstr::suite::failure_report(o);
    CHECK_THAT(report,
               ContainsSubstring("  payload: sh (binary 'sh', args: -c, include files: sh)\n"));
    CHECK_THAT(report, !ContainsSubstring("scheduler declared"));
}
