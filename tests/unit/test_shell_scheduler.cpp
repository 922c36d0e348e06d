// ktstr shell --scheduler: what the host packs and the command line the guest half gets.
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <filesystem>
#include <fstream>

#include "../../src/suite/shell_scheduler.hpp"
#include "ktstr/error.hpp"
#include "ktstr/fd.hpp"

using Catch::Matchers::ContainsSubstring;
using Catch::Matchers::EndsWith;
using Catch::Matchers::StartsWith;
namespace suite = ktstr::suite;

TEST_CASE("shell --scheduler packs ktstr itself and the scheduler", "[shell-scheduler]") {
    auto specs = suite::shell_scheduler_includes({"/bin/true", {"-v"}});
    REQUIRE(specs.size() == 2);
    CHECK(specs[0].spec == std::filesystem::read_symlink("/proc/self/exe").string());
    CHECK(specs[1].spec == "/bin/true");
    CHECK(specs[1].source == "--scheduler");
}

TEST_CASE("shell --scheduler refuses what cannot run, naming it", "[shell-scheduler]") {
    CHECK_THROWS_WITH(suite::shell_scheduler_includes({"/nonexistent/scx_x", {}}),
                      ContainsSubstring("cannot find scheduler '/nonexistent/scx_x'"));
    ktstr::TempDir dir;
    auto plain = (dir.path() / "scx_plain").string();
    std::ofstream(plain) << "not a program\n";
    std::filesystem::permissions(plain, std::filesystem::perms::owner_read);
    CHECK_THROWS_WITH(suite::shell_scheduler_includes({plain, {}}),
                      ContainsSubstring("'" + plain + "' (from --scheduler) is not executable"));
    suite::ShellScheduler many{"/bin/true", std::vector<std::string>(17, "-v")};
    CHECK_THROWS_WITH(suite::shell_scheduler_includes(many),
                      ContainsSubstring("too many --scheduler-arg: at most 16"));
}

TEST_CASE("the guest half's command line quotes every word", "[shell-scheduler]") {
    auto c = suite::shell_scheduler_command({"/opt/scx/scx_simple", {"-s", "it's 5"}},
                                            "echo 'hi' && exit 3", true);
    CHECK_THAT(c, StartsWith("'/include-files/"));
    CHECK_THAT(c, ContainsSubstring("' --ktstr-guest-scheduler -v 'scx_simple' --arg '-s' "
                                    "--arg 'it'\\''s 5' -- "));
    CHECK_THAT(c, EndsWith(" -- 'echo '\\''hi'\\'' && exit 3'"));
}
