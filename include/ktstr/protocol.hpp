// What host and guest say to each other. The job usually travels on the kernel command line
// (kJobWord, which the kernel hands to init as an environment variable), so init starts on it
// at once; a job too long for the command line comes on the control port after the hello.
// Three serial ports after the console (ttyS0):
//   ttyS1  control: JSON lines both ways: guest "hello", host "job" (only when the command
//          line could not hold it), guest "started" (the command or shell is running and the
//          console is open for input), guest "verdict".
//   ttyS2  the command's stdout, raw bytes.
//   ttyS3  the command's stderr, raw bytes.
// The guest init sets KTSTR_RESULT_FILE for the command; what the command
// leaves there travels back in the verdict's test_result.
// A payload printing anything on stdout can never forge a verdict.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ktstr::protocol {

inline constexpr const char* kControlPort = "/dev/ttyS1";
inline constexpr const char* kStdoutPort = "/dev/ttyS2";
inline constexpr const char* kStderrPort = "/dev/ttyS3";
inline constexpr const char* kResultFile = "/run/ktstr-result.json";
// The kernel command line word that carries the job, base64 of its JSON: KTSTR_JOB=<base64>.
// An unknown word with '=' and no '.' becomes an environment variable of init.
inline constexpr const char* kJobWord = "KTSTR_JOB";

// The guest's first line, {"type":"hello", ...}. Stamps are the guest's CLOCK_BOOTTIME in
// ms: the host lines its own clock up with ms_sent to split a run into phases.
struct Hello {
    double ms_init = 0;  // when init started
    double ms_sent = 0;  // when this hello was sent
};

// What the guest must do: {"type":"job", ...}, on the command line or after the hello.
struct Job {
    std::string command;       // run with `sh -c`; empty with interactive
    bool interactive = false;  // a shell on the console instead of a command
    // With interactive: the host's input is not a terminal, so the shell reads its commands
    // from the console like `sh -s` (no prompt, no echo) and writes on the output ports.
    bool script_input = false;
    double timeout_s = 0;  // 0: none; past it the command's group is killed
    std::map<std::string, std::string> env;
    bool verbose = false;
    // The command's PATH, from the packed include files (guest_path() in guest_image.hpp);
    // empty: /include-files and busybox's directories.
    std::string path;
};

// How the command ended; sent as {"type":"verdict", ...}.
struct Verdict {
    std::optional<int> exit_code;  // set when it exited
    std::optional<int> signal;     // set when a signal ended it
    bool timed_out = false;
    std::string error;        // init could not run it (spawn failed, ...)
    std::string test_result;  // a test body's result (JSON text) from $KTSTR_RESULT_FILE
    // "pid (name)" of each process still running after the command ended, killed by init.
    std::vector<std::string> leftover;
    double ms_boot_to_init = 0;  // guest CLOCK_BOOTTIME at init start
    double ms_command = 0;
    double ms_payload_start = 0;  // guest CLOCK_BOOTTIME when the command was spawned
    double ms_payload_end = 0;    // ... and when it had ended and was reaped
};

}  // namespace ktstr::protocol

#include <nlohmann/json.hpp>

namespace ktstr::protocol {

inline void to_json(nlohmann::json& j, const Hello& h) {
    j = {{"type", "hello"}, {"ms_init", h.ms_init}, {"ms_sent", h.ms_sent}};
}

inline void from_json(const nlohmann::json& j, Hello& h) {
    h.ms_init = j.value("ms_init", 0.0);
    h.ms_sent = j.value("ms_sent", 0.0);
}

inline void to_json(nlohmann::json& j, const Job& job) {
    j = {{"type", "job"},
         {"command", job.command},
         {"interactive", job.interactive},
         {"script_input", job.script_input},
         {"timeout_s", job.timeout_s},
         {"env", job.env},
         {"verbose", job.verbose},
         {"path", job.path}};
}

inline void from_json(const nlohmann::json& j, Job& job) {
    job.command = j.value("command", "");
    job.interactive = j.value("interactive", false);
    job.script_input = j.value("script_input", false);
    job.timeout_s = j.value("timeout_s", 0.0);
    job.env = j.value("env", std::map<std::string, std::string>{});
    job.verbose = j.value("verbose", false);
    job.path = j.value("path", "");
}

inline void to_json(nlohmann::json& j, const Verdict& v) {
    j = {{"type", "verdict"},
         {"timed_out", v.timed_out},
         {"ms_boot_to_init", v.ms_boot_to_init},
         {"ms_command", v.ms_command},
         {"ms_payload_start", v.ms_payload_start},
         {"ms_payload_end", v.ms_payload_end}};
    if (v.exit_code) j["exit_code"] = *v.exit_code;
    if (v.signal) j["signal"] = *v.signal;
    if (!v.error.empty()) j["error"] = v.error;
    if (!v.test_result.empty()) j["test_result"] = v.test_result;
    if (!v.leftover.empty()) j["leftover"] = v.leftover;
}

inline void from_json(const nlohmann::json& j, Verdict& v) {
    if (j.contains("exit_code")) v.exit_code = j.at("exit_code").get<int>();
    if (j.contains("signal")) v.signal = j.at("signal").get<int>();
    v.timed_out = j.value("timed_out", false);
    v.error = j.value("error", "");
    v.test_result = j.value("test_result", "");
    v.leftover = j.value("leftover", std::vector<std::string>{});
    v.ms_boot_to_init = j.value("ms_boot_to_init", 0.0);
    v.ms_command = j.value("ms_command", 0.0);
    v.ms_payload_start = j.value("ms_payload_start", 0.0);
    v.ms_payload_end = j.value("ms_payload_end", 0.0);
}

// Base64 (RFC 4648, with padding): the kernel command line takes no spaces or quotes in a
// value, and JSON has both.
inline std::string base64_encode(std::string_view bytes) {
    static constexpr char kDigits[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    for (size_t i = 0; i < bytes.size(); i += 3) {
        uint32_t n = uint32_t(uint8_t(bytes[i])) << 16;
        if (i + 1 < bytes.size()) n |= uint32_t(uint8_t(bytes[i + 1])) << 8;
        if (i + 2 < bytes.size()) n |= uint8_t(bytes[i + 2]);
        out += kDigits[(n >> 18) & 63];
        out += kDigits[(n >> 12) & 63];
        out += i + 1 < bytes.size() ? kDigits[(n >> 6) & 63] : '=';
        out += i + 2 < bytes.size() ? kDigits[n & 63] : '=';
    }
    return out;
}

// nullopt when `text` is not base64 as base64_encode writes it.
inline std::optional<std::string> base64_decode(std::string_view text) {
    auto value = [](char c) -> int {
        if (c >= 'A' && c <= 'Z') return c - 'A';
        if (c >= 'a' && c <= 'z') return c - 'a' + 26;
        if (c >= '0' && c <= '9') return c - '0' + 52;
        if (c == '+') return 62;
        if (c == '/') return 63;
        return -1;
    };
    if (text.size() % 4 != 0) return std::nullopt;
    std::string out;
    for (size_t i = 0; i < text.size(); i += 4) {
        const bool last = i + 4 == text.size();
        const int pad = last ? (text[i + 3] == '=') + (text[i + 2] == '=') : 0;
        if (pad == 1 && text[i + 2] == '=') return std::nullopt;  // "x=y=" is not padding
        uint32_t n = 0;
        for (int k = 0; k < 4; ++k) {
            int v = k >= 4 - pad ? 0 : value(text[i + k]);
            if (v < 0) return std::nullopt;
            n = n << 6 | uint32_t(v);
        }
        out += char(n >> 16);
        if (pad < 2) out += char(n >> 8 & 0xff);
        if (pad < 1) out += char(n & 0xff);
    }
    return out;
}

// The job as the kernel command line word that carries it.
inline std::string job_word(const Job& job) {
    return std::string(kJobWord) + "=" + base64_encode(nlohmann::json(job).dump());
}

}  // namespace ktstr::protocol
