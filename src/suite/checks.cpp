#include <fmt/core.h>

#include <nlohmann/json.hpp>

#include "ktstr/test.hpp"

namespace ktstr {
namespace {

// The first JSON object in `text`: tools such as fio may print notes before it.
nlohmann::json parse_output(const std::string& text) {
    auto start = text.find('{');
    if (start == std::string::npos) return nlohmann::json::value_t::discarded;
    return nlohmann::json::parse(text.begin() + static_cast<long>(start), text.end(), nullptr,
                                 false);
}

}  // namespace

AssertResult check_payload(const Payload& p, const PayloadReport& report) {
    auto result = AssertResult::pass();
    std::string who(p.name);
    bool exit_checked = false;
    nlohmann::json doc;
    bool parsed = false;
    for (const auto& c : p.checks) {
        if (c.kind == Check::Kind::ExitCode) {
            exit_checked = true;
            result.expect(report.exit_code == c.exit_code,
                          fmt::format("{}: expected exit code {}, but it {}", who, c.exit_code,
                                      report.describe()));
            continue;
        }
        if (!parsed) {
            doc = parse_output(report.out.bytes);
            parsed = true;
            if (doc.is_discarded()) {
                result.expect(false, who + ": output is not JSON");
                return result;
            }
        }
        nlohmann::json::json_pointer ptr(std::string(c.field));
        bool has = doc.contains(ptr);
        if (c.kind == Check::Kind::JsonFieldExists) {
            result.expect(has, fmt::format("{}: JSON field {} is missing", who, c.field));
            continue;
        }
        if (!has || !doc.at(ptr).is_number()) {
            result.expect(
                false, fmt::format("{}: JSON field {} is missing or not a number", who, c.field));
            continue;
        }
        double v = doc.at(ptr).get<double>();
        result.expect(v >= c.low && v <= c.high,
                      fmt::format("{}: JSON field {} = {} is outside [{}, {}]", who, c.field, v,
                                  c.low, c.high));
    }
    if (!exit_checked)
        result.expect(report.success(), fmt::format("{}: {}", who, report.describe()));
    return result;
}

}  // namespace ktstr
