"""The Linux UINTR layer (src/uintr_emu/linux/uintr.py) seen from guest programs.

Each tests/programs/uintr_*.c program checks one behaviour of docs/uintr-linux.md for the ABI
it is built for (uintr-next by default, RFC v1 with -DUINTR_ABI_RFC), prints deterministic
lines and ends with "OK" (exit 0); a failed check prints what failed and exits 1.  There is no
UINTR on the host, so the stdout is compared with golden files in tests/golden/uintr/
(``<stem>.<abi>.out``, or ``<stem>.out`` when both ABIs print the same), not with a native run.

The helpers (build_program, run_emu, describe, golden) are fixtures from tests/conftest.py;
``pytest --update-golden`` rewrites the golden files (tests/README.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = ROOT / "examples"
GOLDEN = ROOT / "tests" / "golden" / "uintr"

#: rfc:471 is the RFC v1 semantics at uintr-next's numbers (Intel's intermediate series): the
#: RFC programs, built with those numbers, must print what they print under rfc.
ABIS = ["next", "rfc", "rfc:471"]
CPUS = [1, 2, 4]
UINTR_CFLAGS = ("-muintr", "-mgeneral-regs-only", "-I", str(EXAMPLES_DIR))
ABI_CFLAGS = {
    "next": (),
    "rfc": ("-DUINTR_ABI_RFC",),
    "rfc:471": ("-DUINTR_ABI_RFC", "-DUINTR_RFC_BASE=471"),
}


def golden_file(stem: str, abi: str) -> Path:
    """``<stem>.<abi>.out``, or ``<stem>.out`` when there is none (both ABIs print the same);
    rfc:BASE has rfc's files."""
    abi = abi.partition(":")[0]
    path = GOLDEN / f"{stem}.{abi}.out"
    return path if path.exists() else GOLDEN / f"{stem}.out"


@pytest.fixture(scope="session")
def uintr_run(build_program, run_emu):
    """``uintr_run(name, abi, args=(), cpus=2, extra=())``: build tests/programs/<name>.c for
    the ABI and run it under the emulator with ``--uintr-abi abi``."""

    def run(name: str, abi: str, args=(), cpus: int = 2, extra=()):
        path = build_program(name, UINTR_CFLAGS + ABI_CFLAGS[abi])
        return run_emu(path, args, cpus=cpus, extra=["--uintr-abi", abi, *extra])

    return run


@pytest.fixture(scope="session")
def assert_output(describe, golden):
    """``assert_output(result, expected, what)``: no traceback, exit status 0 and stdout
    ``expected``: a string, or a golden file's Path (rewritten under --update-golden)."""

    def check(result, expected: str | Path, what: str) -> None:
        rc, out, err = result
        assert b"Traceback" not in err, describe(result)
        status = f"{what}: exit status {rc}\n{describe(result)}"
        stdout = out.decode(errors="replace")
        message = f"{what}: stdout differs\n{describe(result)}"
        if isinstance(expected, Path):
            if golden.update:
                assert rc == 0, status  # a failing run's output is no golden output
            golden.check(expected, stdout, message)
        else:
            assert stdout == expected, message
        assert rc == 0, status

    return check


# --------------------------------------------------------------------------- 1, 2: errors


@pytest.mark.parametrize("cpus", [1, 4])
@pytest.mark.parametrize("abi", ABIS)
def test_errors(abi, cpus, uintr_run, assert_output):
    """Every errno of docs/uintr-linux.md, one line per check; the UITT fills at 256."""
    result = uintr_run("uintr_errors", abi, cpus=cpus)
    assert_output(result, golden_file("errors", abi), f"uintr_errors {abi} --cpus {cpus}")


@pytest.mark.parametrize("abi", ABIS)
def test_without_the_cpu_feature(abi, uintr_run, assert_output):
    """--cpu-features=-uintr: CPUID bit clear, ENOSYS (next) / EOPNOTSUPP (rfc) from every
    call, SIGILL from every UINTR instruction."""
    result = uintr_run("uintr_nofeature", abi, cpus=1, extra=["--cpu-features=-uintr"])
    assert_output(result, golden_file("nofeature", abi), f"uintr_nofeature {abi}")


@pytest.mark.parametrize(
    "built, chosen, hint",
    [
        ("next", "rfc", "471; returning -ENOSYS (it is uintr_register_handler under --uintr-abi "
         "next or rfc:471)"),
        ("rfc", "next", "449 (futex_waitv); returning -ENOSYS (it is uintr_register_handler "
         "under --uintr-abi rfc)"),
        ("rfc:471", "rfc", "471; returning -ENOSYS (it is uintr_register_handler under "
         "--uintr-abi next or rfc:471)"),
    ],
)  # fmt: skip
def test_a_call_of_another_abi_is_named(built, chosen, hint, build_program, run_emu, describe):
    """A program built for one numbering run under another: its first UINTR call is ENOSYS,
    with one line that names the --uintr-abi that has it."""
    path = build_program("uintr_errors", UINTR_CFLAGS + ABI_CFLAGS[built])
    result = run_emu(path, cpus=1, extra=["--uintr-abi", chosen])
    assert result[0] == 1 and b"FAIL" in result[1], describe(result)
    line = f"uintr-emu: warning: unsupported syscall {hint}\n"
    assert line in result[2].decode(), describe(result)


def test_errors_program_needs_the_feature(uintr_run):
    """The errors program is not vacuous: without the feature its first check fails."""
    rc, out, _ = uintr_run("uintr_errors", "next", cpus=1, extra=["--cpu-features=-uintr"])
    assert rc == 1 and b"FAIL" in out


# --------------------------------------------------------------------------- 3: signals

SIGNAL_MODES = {
    "ud": ABIS,
    "gp": ABIS,
    "close-empty": ABIS,
    "close-entry": ABIS,
    "ud-child": ABIS,
    "gp-child": ABIS,
    "kmem": ABIS,
    "kmem-addr": ["next"],
}


def _signal_cases():
    for mode, abis in SIGNAL_MODES.items():
        for abi in abis:
            yield pytest.param(mode, abi, id=f"{mode}-{abi}")


@pytest.mark.parametrize(("mode", "abi"), list(_signal_cases()))
def test_sigill_sigsegv(mode, abi, uintr_run, assert_output):
    """SENDUIPI faults: #UD -> SIGILL/ILL_ILLOPN, #GP -> SIGSEGV/SI_KERNEL (si_addr 0), with a
    handler and as a child's termination signal; closing a vector fd removes its senders; a
    guest access to the kernel's UPID/UITT area -> SIGSEGV/SEGV_MAPERR."""
    result = uintr_run("uintr_sigill_sigsegv", abi, [mode])
    assert_output(result, golden_file(f"sigill_sigsegv-{mode}", abi), f"{mode} {abi}")


# --------------------------------------------------------------------------- 4, 5: scheduling


@pytest.mark.parametrize("cpus", CPUS)
@pytest.mark.parametrize("abi", ABIS)
def test_descheduled_receiver(abi, cpus, uintr_run, assert_output):
    """Posts to a receiver that is off its CPU (SN = 1) are delivered once when it runs again;
    repeated posts of one vector coalesce."""
    result = uintr_run("uintr_descheduled", abi, cpus=cpus)
    assert_output(result, golden_file("descheduled", abi), f"uintr_descheduled {abi} --cpus {cpus}")


@pytest.mark.parametrize("cpus", CPUS)
@pytest.mark.parametrize("abi", ABIS)
def test_uintr_wait(abi, cpus, uintr_run, assert_output):
    """uintr_wait: EINTR after the handler ran; uintr-next: 0 after the full timeout."""
    result = uintr_run("uintr_wait", abi, cpus=cpus)
    assert_output(result, golden_file("wait", abi), f"uintr_wait {abi} --cpus {cpus}")


# --------------------------------------------------------------------------- 6: WAITING flags

FLAG_VALUES = {"receiver": 0x1000, "sender": 0x2000, "none": 0}
#: Blocking calls a user interrupt ends under a WAITING flag (and only under one).
WAITS = ["nanosleep", "usleep", "futex", "pipe", "poll", "wait4"]
NORMAL_RESULT = {"pipe": "1", "poll": "1", "socket": "1", "eventfd": "8"}


def waiting_expected(flag: str, kinds: list[str]) -> str:
    lines = [f"flags: {FLAG_VALUES[flag]:#x}" if FLAG_VALUES[flag] else "flags: 0x0"]
    for kind in kinds:
        if flag == "none":
            ret, how = f"{NORMAL_RESULT.get(kind, '0')} errno -", "not interrupted"
        else:
            ret, how = "-1 errno EINTR", "interrupted"
        lines.append(f"{kind}: ret {ret}, handler ran 1 time(s) before it returned, {how}")
    return "\n".join([*lines, "OK", ""])


@pytest.mark.parametrize("cpus", CPUS)
@pytest.mark.parametrize("flag", ["receiver", "sender"])
def test_waiting_flag_interrupts_blocking_calls(flag, cpus, uintr_run, assert_output):
    """uintr-next WAITING_RECEIVER / WAITING_SENDER: sleeps, futex, pipe, poll and wait4 end
    with EINTR, the handler having run first."""
    result = uintr_run("uintr_waiting_flags", "next", [flag, *WAITS], cpus=cpus)
    assert_output(result, waiting_expected(flag, WAITS), f"{flag} --cpus {cpus}")


@pytest.mark.parametrize("kind", ["eventfd", "socket"])
@pytest.mark.parametrize("flag", ["receiver", "sender"])
def test_waiting_flag_interrupts_reads(flag, kind, uintr_run, assert_output):
    """docs/uintr-linux.md: with a WAITING flag, eventfd and socket reads are interrupted too."""
    result = uintr_run("uintr_waiting_flags", "next", [flag, kind])
    assert_output(result, waiting_expected(flag, [kind]), f"{flag} {kind}")


@pytest.mark.parametrize("cpus", CPUS)
def test_without_waiting_flag_nothing_is_interrupted(cpus, uintr_run, assert_output):
    """Without a flag (RFC behaviour) no blocking call is ended by a user interrupt; the
    interrupt is delivered as the call returns normally."""
    kinds = [*WAITS, "eventfd", "socket"]
    result = uintr_run("uintr_waiting_flags", "next", ["none", *kinds], cpus=cpus)
    assert_output(result, waiting_expected("none", kinds), f"none --cpus {cpus}")


def test_waiting_flags_rejected_by_rfc(uintr_run, describe):
    """RFC v1 has no WAITING flags: register_handler(h, 0x1000) is EINVAL."""
    rc, out, err = uintr_run("uintr_waiting_flags", "rfc", ["receiver", "nanosleep"])
    assert rc == 1, describe((rc, out, err))
    assert b"FAIL: register_handler: EINVAL" in err, describe((rc, out, err))


# --------------------------------------------------------------------------- 7, 8: processes


@pytest.mark.parametrize("cpus", CPUS)
@pytest.mark.parametrize("abi", ABIS)
def test_fork(abi, cpus, uintr_run, assert_output):
    """A forked child (UIF = 0) sends through the inherited fd; uintr-next: it may also use
    the parent's UITT index, RFC v1: SIGILL."""
    result = uintr_run("uintr_fork", abi, cpus=cpus)
    assert_output(result, golden_file("fork", abi), f"uintr_fork {abi} --cpus {cpus}")


@pytest.mark.parametrize("cpus", CPUS)
def test_ipi_fd_carries_the_uitt(cpus, uintr_run, assert_output):
    """uintr-next's ipi fd, kept across execve: UIPI_SET_TARGET_TABLE installs the table for
    the whole process and reaches the calling thread's TT before the ioctl returns, so the
    SENDUIPI right after it works (docs/uintr-linux.md, Kernel behaviour: UITTs)."""
    result = uintr_run("uintr_ipi_fd", "next", cpus=cpus)
    assert_output(result, GOLDEN / "ipi_fd.next.out", f"uintr_ipi_fd --cpus {cpus}")


@pytest.mark.parametrize("cpus", CPUS)
@pytest.mark.parametrize("abi", ABIS)
def test_scm_rights(abi, cpus, uintr_run, assert_output):
    """A vector fd (and an eventfd) passed with SCM_RIGHTS to a child that closed its own."""
    result = uintr_run("uintr_scm_rights", abi, cpus=cpus)
    assert_output(result, golden_file("scm_rights", abi), f"uintr_scm_rights {abi} --cpus {cpus}")


# --------------------------------------------------------------------------- 9: determinism


@pytest.mark.parametrize("abi", ABIS)
def test_deterministic(abi, uintr_run, describe):
    """Two runs give the same stdout and the same uintr/sched trace, event for event."""
    extra = ["--trace", "uintr,sched"]
    first = uintr_run("uintr_descheduled", abi, cpus=2, extra=extra)
    second = uintr_run("uintr_descheduled", abi, cpus=2, extra=extra)
    assert first[0] == second[0] == 0, describe(first)
    assert first[1] == second[1], "stdout differs between two identical runs"
    assert first[2] == second[2], "the trace differs between two identical runs"
    assert b"senduipi" in first[2] and b"deliver" in first[2]


@pytest.mark.parametrize("seed", [1, 2])
def test_results_do_not_depend_on_the_schedule(seed, uintr_run, assert_output):
    """--seed N varies slice lengths and placement: the programs' results stay the same."""
    for name, stem in (("uintr_descheduled", "descheduled"), ("uintr_wait", "wait")):
        result = uintr_run(name, "next", cpus=2, extra=["--seed", str(seed)])
        assert_output(result, golden_file(stem, "next"), f"{name} --seed {seed}")
