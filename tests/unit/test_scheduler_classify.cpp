// Reading the kernel's and libbpf's words: attach failures, ejections, kernel problems.
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include "../../src/suite/host.hpp"
#include "../../src/suite/scheduler_run.hpp"

using Catch::Matchers::ContainsSubstring;
using Catch::Matchers::EndsWith;
using namespace ktstr::suite;

namespace {

std::vector<KernelRecord> kernel(std::initializer_list<std::pair<int, const char*>> lines) {
    std::vector<KernelRecord> records;
    for (auto [level, text] : lines) records.push_back({level, text});
    return records;
}

// A verifier rejection as libbpf prints it; `end` false leaves the END marker out.
std::string verifier_output(bool end) {
    std::string s =
        "libbpf: prog 'fixture_enqueue': BPF program load failed: Permission denied\n"
        "libbpf: prog 'fixture_enqueue': -- BEGIN PROG LOAD LOG --\n"
        "0: R1=ctx() R10=fp0\n"
        "; void BPF_STRUCT_OPS(fixture_enqueue, struct task_struct *p) @ fixture.bpf.c:40\n"
        "0: (79) r6 = *(u64 *)(r1 +0)\n"
        "1: (61) r1 = *(u32 *)(r6 +4096)\n"
        "R6 invalid mem access 'scalar'\n"
        "processed 2 insns (limit 1000000) max_states_per_insn 0 total_states 0\n";
    if (end) s += "-- END PROG LOAD LOG --\n";
    return s + "libbpf: prog 'fixture_enqueue': failed to load: -13\n";
}

}  // namespace

TEST_CASE("EBUSY from a loader names the attached scheduler", "[scheduler]") {
    auto e = classify_attach_failure(
        "scx_fixture: cannot attach struct_ops map ktstr_fixture_ops: Device or resource busy\n",
        {}, "ktstr_fixture");
    CHECK(e.kind == AttachErrorKind::Busy);
    CHECK_THAT(e.reason, ContainsSubstring("another sched_ext scheduler is attached: "
                                           "'ktstr_fixture'"));
    CHECK_THAT(e.reason, ContainsSubstring("Device or resource busy"));
}

TEST_CASE("EBUSY in any of libbpf's spellings is busy", "[scheduler]") {
    for (const char* output : {
             "[SCX_BUG] scx_simple.c:92 (Device or resource busy)\nFailed to attach struct_ops\n",
             "libbpf: map 'simple_ops': failed to attach struct_ops: -EBUSY\n",
             "libbpf: map 'simple_ops': failed to attach: Unknown error (-16)\n",
         }) {
        CAPTURE(output);
        auto e = classify_attach_failure(output, {}, "central");
        CHECK(e.kind == AttachErrorKind::Busy);
        CHECK_THAT(e.reason, ContainsSubstring("'central'"));
    }
}

TEST_CASE("a kfunc the kernel lacks is named", "[scheduler]") {
    auto e = classify_attach_failure(
        "libbpf: extern (func ksym) 'scx_bpf_dsq_move_to_local': not found in kernel or module "
        "BTFs\nlibbpf: failed to load object 'scx_fixture_bpf'\n"
        "scx_fixture: cannot load BPF programs of ktstr_fixture: No such process\n",
        {}, "");
    CHECK(e.kind == AttachErrorKind::MissingKfunc);
    CHECK(e.reason == "the kernel has no kfunc 'scx_bpf_dsq_move_to_local'");
}

TEST_CASE("a weak kfunc left unresolved is missing, and its verifier log is kept", "[scheduler]") {
    auto e = classify_attach_failure(
        "libbpf: prog 'fixture_tick': BPF program load failed: Invalid argument\n"
        "libbpf: prog 'fixture_tick': -- BEGIN PROG LOAD LOG --\n"
        "0: R1=ctx() R10=fp0\n"
        "3: <invalid kfunc call>\n"
        "kfunc 'scx_bpf_cpu_curr' is referenced but wasn't resolved\n"
        "-- END PROG LOAD LOG --\n",
        {}, "");
    CHECK(e.kind == AttachErrorKind::MissingKfunc);
    CHECK(e.reason == "the kernel has no kfunc 'scx_bpf_cpu_curr'");
    CHECK_THAT(e.verifier_log, ContainsSubstring("<invalid kfunc call>"));
}

TEST_CASE("a kfunc with another prototype is a missing kfunc too", "[scheduler]") {
    auto e = classify_attach_failure(
        "libbpf: extern (func ksym) 'scx_bpf_dsq_insert': func_proto [61] incompatible with "
        "vmlinux [111691]\n",
        {}, "");
    CHECK(e.kind == AttachErrorKind::MissingKfunc);
    CHECK_THAT(e.reason, ContainsSubstring("'scx_bpf_dsq_insert' has another prototype"));
}

TEST_CASE("E2BIG and EINVAL are refused options, with the kernel's words", "[scheduler]") {
    auto big = classify_attach_failure(
        "libbpf: map 'ktstr_fixture_ops': failed to create: Argument list too long(-7)\n", {}, "");
    CHECK(big.kind == AttachErrorKind::RefusedOption);
    CHECK_THAT(big.reason, ContainsSubstring("(E2BIG)"));
    CHECK_THAT(big.reason, ContainsSubstring("failed to create: Argument list too long(-7)"));

    auto invalid = classify_attach_failure(
        "libbpf: map 'flat_ops': failed to attach struct_ops: -EINVAL\n",
        kernel({{3, "sched_ext: BPF scheduler \"flat\" disabled (runtime error)"},
                {3, "sched_ext: flat: SCX_OPS_ENQ_LAST requires ops.enqueue()"}}),
        "");
    CHECK(invalid.kind == AttachErrorKind::RefusedOption);
    CHECK_THAT(invalid.reason, ContainsSubstring("(EINVAL)"));
    CHECK_THAT(invalid.reason,
               EndsWith("the kernel: runtime error: SCX_OPS_ENQ_LAST requires ops.enqueue()"));
}

TEST_CASE("a verifier rejection gives the end of the log, where the reason is", "[scheduler]") {
    auto e = classify_attach_failure(verifier_output(true), {}, "");
    CHECK(e.kind == AttachErrorKind::VerifierRejected);
    CHECK_THAT(e.reason, ContainsSubstring("program 'fixture_enqueue' (Permission denied): R6 "
                                           "invalid mem access 'scalar'"));
    CHECK_THAT(e.reason, ContainsSubstring("processed 2 insns"));
    CHECK_FALSE(e.log_cut);
    CHECK_THAT(e.verifier_log, ContainsSubstring("0: R1=ctx() R10=fp0\n"));
    CHECK_THAT(e.verifier_log, !ContainsSubstring("END PROG LOAD LOG"));
}

TEST_CASE("a verifier log without its end, or past the capture limit, is flagged cut",
          "[scheduler]") {
    CHECK(classify_attach_failure(verifier_output(false), {}, "").log_cut);
    CHECK(classify_attach_failure(verifier_output(true), {}, "", true).log_cut);
}

TEST_CASE("any other exit gives the last line and the kernel's reason", "[scheduler]") {
    auto e = classify_attach_failure(
        "scx_fixture: cannot open BPF object of ktstr_fixture: Cannot allocate memory\n\n",
        kernel({{3, "sched_ext: BPF scheduler \"ktstr_fixture\" disabled (runtime error)"},
                {3, "sched_ext: ktstr_fixture: ops.init() failed (-12)"}}),
        "");
    CHECK(e.kind == AttachErrorKind::Exited);
    CHECK(e.reason ==
          "scx_fixture: cannot open BPF object of ktstr_fixture: Cannot allocate memory; the "
          "kernel: runtime error: ops.init() failed (-12)");
    CHECK(classify_attach_failure("", {}, "").reason == "(no output)");
}

TEST_CASE("a stall ejection is read with its message and backtrace", "[scheduler]") {
    auto ej = find_ejection(kernel({
        {6, "sched_ext: BPF scheduler \"ktstr_fixture\" enabled"},
        {3, "sched_ext: BPF scheduler \"ktstr_fixture\" disabled (runnable task stall)"},
        {3, "sched_ext: ktstr_fixture: stallme[119] failed to run for 2.868s"},
        {3, "   scx_vexit+0x6d/0xa0"},
        {3, "   scx_watchdog_workfn+0x1b6/0x260"},
        {6, "random: crng init done"},
    }));
    REQUIRE(ej);
    CHECK(ej->kind == EjectionKind::Stall);
    CHECK(ej->error);
    CHECK(ej->scheduler == "ktstr_fixture");
    CHECK(ej->reason == "runnable task stall");
    CHECK(ej->message == "stallme[119] failed to run for 2.868s");
    CHECK(ej->lines.size() == 4);
}

TEST_CASE("each kernel reason has its kind; the last disable counts", "[scheduler]") {
    auto kind_of = [](const char* reason, int level) {
        std::string line = std::string("sched_ext: BPF scheduler \"s\" disabled (") + reason + ")";
        auto ej = find_ejection({{level, line}});
        REQUIRE(ej);
        CHECK(ej->error == (level <= 3));
        return ej->kind;
    };
    CHECK(kind_of("scx_bpf_error", 3) == EjectionKind::BpfError);
    CHECK(kind_of("runtime error", 3) == EjectionKind::RuntimeError);
    CHECK(kind_of("unregistered from user space", 6) == EjectionKind::Unregistered);
    CHECK(kind_of("disabled by sysrq-S", 6) == EjectionKind::Other);

    auto last = find_ejection(kernel({
        {3, "sched_ext: BPF scheduler \"a\" disabled (scx_bpf_error)"},
        {6, "sched_ext: BPF scheduler \"b\" disabled (unregistered from user space)"},
    }));
    REQUIRE(last);
    CHECK(last->scheduler == "b");
    CHECK_FALSE(find_ejection(kernel({{6, "sched_ext: BPF scheduler \"a\" enabled"}})));
    CHECK_FALSE(find_ejection({{3, "sched_ext: BPF scheduler \"a\" disabled (forged)", 1}}));
}

TEST_CASE("kmsg records give their level and text", "[scheduler]") {
    auto r = parse_kmsg_record("3,812,17380961,-;sched_ext: ktstr_fixture: x\n SUBSYSTEM=cpu\n");
    REQUIRE(r);
    CHECK(r->level == 3);
    CHECK(r->text == "sched_ext: ktstr_fixture: x");
    auto user = parse_kmsg_record("12,1,2,-;user says hi\n");
    REQUIRE(user);
    CHECK(user->level == 4);
    CHECK(user->facility == 1);
    CHECK(r->facility == 0);
    CHECK_FALSE(parse_kmsg_record("no prefix here"));
    CHECK_FALSE(parse_kmsg_record("x,1,2,-;text"));
}

TEST_CASE("warnings, BUGs and oopses are kernel problems; other lines are not", "[scheduler]") {
    auto problems = kernel_problems(kernel({
        {6, "sched_ext: BPF scheduler \"a\" enabled"},
        {4, "------------[ cut here ]------------"},
        {4, "WARNING: CPU: 1 PID: 0 at kernel/sched/ext.c:1234 scx_tick+0x10/0x20"},
        {4, "Modules linked in:"},
        {1, "BUG: kernel NULL pointer dereference, address: 0000000000000008"},
        {4, "Oops: 0000 [#1] PREEMPT SMP NOPTI"},
    }));
    REQUIRE(problems.size() == 3);
    CHECK_THAT(problems[0], ContainsSubstring("WARNING: CPU: 1 PID: 0 at kernel/sched/ext.c"));
    CHECK_THAT(problems[0], ContainsSubstring("\n  Modules linked in:"));
    CHECK_THAT(problems[1], ContainsSubstring("BUG: kernel NULL pointer dereference"));
    CHECK_THAT(problems[2], ContainsSubstring("Oops: 0000"));
    CHECK(kernel_problems(kernel({{6, "random: crng init done"}})).empty());
    CHECK(kernel_problems({{4, "WARNING: written by user space", 1}}).empty());
}

TEST_CASE("new taint bits are named; old ones are not", "[scheduler]") {
    CHECK(describe_new_taint(0, (1UL << 9) | (1UL << 7)) ==
          "D (kernel died: oops or BUG), W (kernel warning)");
    CHECK(describe_new_taint(1UL << 9, (1UL << 9) | (1UL << 12)) == "O (out-of-tree module)");
    CHECK(describe_new_taint(1UL << 9, 1UL << 9).empty());
}

TEST_CASE("the ops name may carry a suffix the kernel appended", "[scheduler]") {
    CHECK(ops_names("ktstr_fixture", "ktstr_fixture"));
    CHECK(ops_names("simple_1.0.2_g1234", "simple"));
    CHECK_FALSE(ops_names("central", "simple"));
    CHECK_FALSE(ops_names("simple", ""));
}

TEST_CASE("under a sched_ext scheduler the guest gets time for the watchdog", "[scheduler]") {
    static constexpr ktstr::Scheduler fixture{
        .name = "ktstr_fixture", .spec = ktstr::SchedulerSpec::discover("scx_fixture")};
    static constexpr auto fixture_payload = ktstr::Payload::for_scheduler(fixture);
    auto body = [](ktstr::Ctx&) { return ktstr::AssertResult::pass(); };
    ktstr::TestCase eevdf{"t", {.timeout_s = 60}, body, "f", 1};
    ktstr::TestCase scx{"t", {.scheduler = &fixture_payload, .timeout_s = 60}, body, "f", 1};
    // The guest reports a body past its timeout itself: its own deadline comes later.
    CHECK(job_timeout_s(eevdf) > 60);
    CHECK(job_timeout_s(eevdf) <= 60 + 30);
    CHECK(job_timeout_s(scx) >= job_timeout_s(eevdf) + 1.5 * 30);
}
