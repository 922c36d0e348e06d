// What a suite run prints and writes: status names, failure reports, JUnit XML.
#include <fmt/format.h>

#include <algorithm>

#include "host.hpp"
#include "ktstr/run_phases.hpp"

namespace ktstr::suite {
namespace {

std::string xml_escape(std::string_view s) {
    std::string out;
    for (unsigned char c : s) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            case '\'':
                out += "&apos;";
                break;
            default:
                // XML 1.0 has no place for most control characters.
                if (c < 0x20 && c != '\n' && c != '\t' && c != '\r')
                    out += fmt::format("\\x{:02x}", c);
                else
                    out += static_cast<char>(c);
        }
    }
    return out;
}

std::string join_lines(const std::vector<std::string>& lines) {
    std::string s;
    for (const auto& l : lines) s += (s.empty() ? "" : "\n") + l;
    return s;
}

std::string junit_property(std::string_view name, std::string_view value) {
    return fmt::format("<property name=\"{}\" value=\"{}\"/>", xml_escape(name), xml_escape(value));
}

// Where the time went: each phase as ms_<phase>, when the guest's stamps came back.
std::string junit_properties(const TestOutcome& o) {
    std::string x = junit_property("ms_to_hello", fmt::format("{:.0f}", o.vm.ms_to_hello)) +
                    junit_property("ms_total", fmt::format("{:.0f}", o.vm.ms_total)) +
                    junit_property("scheduler", scheduler_shown(o));
    if (auto phases = run_phases(o.ms_pack, o.vm)) {
        for (auto [name, ms] : phases->named()) {
            std::string key = "ms_" + std::string(name);
            std::replace(key.begin(), key.end(), ' ', '_');
            x += junit_property(key, fmt::format("{:.0f}", ms));
        }
    }
    return x;
}

}  // namespace

const char* status_name(Status s) {
    switch (s) {
        case Status::Pass:
            return "PASS";
        case Status::Fail:
            return "FAIL";
        case Status::Skip:
            return "SKIP";
        case Status::Error:
            return "ERROR";
    }
    return "?";
}

std::string scheduler_shown(const TestOutcome& o) {
    if (!o.scheduler.empty()) return o.scheduler;
    const auto* s = o.test->attrs.scheduler;
    return s ? std::string(s->name) : "eevdf";
}

std::string failure_report(const TestOutcome& o, bool whole_console) {
    const auto& a = o.test->attrs;
    std::string s =
        fmt::format("--- {} {} ({}:{})\n  topology {}, scheduler {}\n", status_name(o.status),
                    o.test->name, o.test->file, o.test->line, a.topology, scheduler_shown(o));
    if (auto declared = a.scheduler ? a.scheduler->scheduler() : nullptr)
        s += fmt::format("  scheduler declared: {}\n", *declared);
    if (a.payload) s += fmt::format("  payload: {}\n", *a.payload);
    for (auto w : a.workloads) s += fmt::format("  workload: {}\n", *w);
    for (const auto& m : o.messages) s += "  " + m + "\n";
    if (!o.stdout_tail.empty()) s += "--- guest stdout (tail)\n" + o.stdout_tail + "\n";
    if (!o.stderr_tail.empty()) s += "--- guest stderr (tail)\n" + o.stderr_tail + "\n";
    if (whole_console && !o.vm.console.empty())
        s += "--- guest console\n" + o.vm.console + (o.vm.console.back() == '\n' ? "" : "\n");
    else if (!o.vm.console_tail.empty())
        s += "--- guest console (tail)\n" + o.vm.console_tail + "\n";
    return s;
}

std::string junit_xml(const std::vector<TestOutcome>& outcomes, const std::string& suite_name) {
    int failures = 0, errors = 0, skipped = 0;
    double total = 0;
    for (const auto& o : outcomes) {
        failures += o.status == Status::Fail;
        errors += o.status == Status::Error;
        skipped += o.status == Status::Skip;
        total += o.seconds;
    }
    std::string x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    x += fmt::format(
        "<testsuites>\n<testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" "
        "skipped=\"{}\" time=\"{:.3f}\">\n",
        xml_escape(suite_name), outcomes.size(), failures, errors, skipped, total);
    for (const auto& o : outcomes) {
        x += fmt::format("  <testcase name=\"{}\" classname=\"{}\" time=\"{:.3f}\">\n",
                         xml_escape(o.test->name), xml_escape(suite_name), o.seconds);
        auto text = xml_escape(join_lines(o.messages));
        auto first = o.messages.empty() ? std::string() : o.messages.front();
        if (o.status == Status::Fail)
            x += fmt::format("    <failure message=\"{}\">{}</failure>\n", xml_escape(first), text);
        else if (o.status == Status::Error)
            x += fmt::format("    <error message=\"{}\">{}</error>\n", xml_escape(first), text);
        else if (o.status == Status::Skip)
            x += fmt::format("    <skipped message=\"{}\"/>\n", xml_escape(first));
        x += "    <properties>" + junit_properties(o) + "</properties>\n";
        if (!o.stdout_tail.empty())
            x += "    <system-out>" + xml_escape(o.stdout_tail) + "</system-out>\n";
        if (!o.stderr_tail.empty() || !o.vm.console_tail.empty())
            x += "    <system-err>" + xml_escape(o.stderr_tail + o.vm.console_tail) +
                 "</system-err>\n";
        x += "  </testcase>\n";
    }
    return x + "</testsuite>\n</testsuites>\n";
}

}  // namespace ktstr::suite
