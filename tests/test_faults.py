"""Architectural faults -> Linux signals, under the emulator and natively.

tests/programs/fault_signals.c takes one fault per run (see its header for the table) and
either catches it with a SA_SIGINFO handler, which prints the signal, si_code, whether si_addr
is the expected address and whether the ucontext RIP is the faulting instruction, then
siglongjmps and goes on -- or leaves the default action, which ends the program: status 128+N
and one line ``uintr-emu: program terminated by SIGNAME (rip=0x..., address 0x...)`` (no
address when si_code is SI_KERNEL: #GP, #SS, int3).  Where
the fault exists natively, the native run must agree (native return code -N <-> 128+N, the
same "caught" line).

tests/programs/fault_uintr.c makes faults around user-interrupt delivery (a NULL store in the
UINTR handler, UIRET over a corrupted frame, a handler that never returns, a SENDUIPI storm),
and tests/programs/fault_syscalls.c the syscalls the fuzz (tests/test_fuzz.py) found to crash
the emulator, as a real program makes them.

Known emulator bugs are strict xfails (docs/robustness.md).  The helpers come from
tests/conftest.py as fixtures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = ROOT / "examples"
UINTR_CFLAGS = ("-muintr", "-mgeneral-regs-only", "-I", str(EXAMPLES_DIR))
ABI_CFLAGS = {"next": (), "rfc": ("-DUINTR_ABI_RFC",)}
ABIS = ["next", "rfc"]

SIGNO = {"SIGILL": 4, "SIGTRAP": 5, "SIGBUS": 7, "SIGFPE": 8, "SIGSEGV": 11}
FATAL = re.compile(
    r"^uintr-emu: program terminated by (?P<sig>SIG[A-Z]+) "
    r"\(rip=0x(?P<rip>[0-9a-f]+)(?:, address 0x(?P<addr>[0-9a-f]+))?\)$"
)


@dataclass(frozen=True)
class Fault:
    signal: str
    code: str
    xfail_handler: str | None = None
    xfail_default: str | None = None
    extra: tuple[str, ...] = ()  # emulator options


FAULTS = {
    "read-unmapped": Fault("SIGSEGV", "SEGV_MAPERR"),
    "write-unmapped": Fault("SIGSEGV", "SEGV_MAPERR"),
    "exec-unmapped": Fault("SIGSEGV", "SEGV_MAPERR"),
    "write-readonly": Fault("SIGSEGV", "SEGV_ACCERR"),
    "exec-data": Fault("SIGSEGV", "SEGV_ACCERR"),
    "noncanonical": Fault("SIGSEGV", "SI_KERNEL"),
    "noncanonical-low": Fault("SIGSEGV", "SI_KERNEL"),
    "noncanonical-alias": Fault("SIGSEGV", "SI_KERNEL"),
    "noncanonical-stack": Fault("SIGBUS", "SI_KERNEL"),
    "kernel-half": Fault("SIGSEGV", "SEGV_MAPERR"),
    "exec-noncanonical": Fault("SIGSEGV", "SI_KERNEL"),
    "exec-noncanonical-rip": Fault("SIGSEGV", "SI_KERNEL"),
    "exec-kernel-half": Fault("SIGSEGV", "SEGV_MAPERR"),
    "file-past-eof": Fault("SIGBUS", "BUS_ADRERR"),
    "fxsave-crossing": Fault("SIGSEGV", "SEGV_ACCERR"),
    "fnstenv-crossing": Fault("SIGSEGV", "SEGV_ACCERR"),
    "ud2": Fault("SIGILL", "ILL_ILLOPN"),
    "uintr-insn": Fault("SIGILL", "ILL_ILLOPN", extra=("--cpu-features=-uintr",)),
    "div-zero": Fault("SIGFPE", "FPE_INTDIV"),
    "div-overflow": Fault("SIGFPE", "FPE_INTDIV"),
    "int3": Fault("SIGTRAP", "SI_KERNEL"),
}


@pytest.fixture(scope="session")
def fatal_line(describe):
    """``fatal_line(result)``: the one stderr line of a fatal signal, matched by FATAL."""

    def line(result) -> re.Match:
        _, _, err = result
        assert b"Traceback" not in err and b"internal error" not in err, describe(result)
        lines = err.decode(errors="replace").splitlines()
        assert len(lines) == 1, f"expected exactly one line on stderr\n{describe(result)}"
        m = FATAL.match(lines[0])
        assert m, f"not a termination line: {lines[0]!r}"
        return m

    return line


def symbol_range(path: Path, name: str) -> tuple[int, int]:
    with path.open("rb") as f:
        for sym in ELFFile(f).get_section_by_name(".symtab").iter_symbols():
            if sym.name == name and sym["st_info"]["type"] == "STT_FUNC":
                return sym["st_value"], sym["st_value"] + sym["st_size"]
    raise LookupError(name)


def bytes_at(path: Path, addr: int, n: int) -> bytes:
    """The program's bytes at virtual address `addr` (from its PT_LOAD segments)."""
    with path.open("rb") as f:
        for seg in ELFFile(f).iter_segments():
            if (
                seg["p_type"] == "PT_LOAD"
                and seg["p_vaddr"] <= addr < seg["p_vaddr"] + seg["p_filesz"]
            ):
                return seg.data()[addr - seg["p_vaddr"] : addr - seg["p_vaddr"] + n]
    raise LookupError(hex(addr))


def _params(variant: str):
    for mode, f in FAULTS.items():
        reason = f.xfail_handler if variant == "handler" else f.xfail_default
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        yield pytest.param(mode, marks=marks, id=mode)


@pytest.fixture(scope="module")
def fault_signals(build_program) -> Path:
    return build_program("fault_signals")


@pytest.fixture(scope="module")
def native(fault_signals, run_native):
    cache: dict = {}

    def get(mode: str, variant: str):
        if (mode, variant) not in cache:
            cache[mode, variant] = run_native(fault_signals, [mode, variant])
        return cache[mode, variant]

    return get


# --------------------------------------------------------------------------- fault_signals


@pytest.mark.parametrize("mode", list(_params("handler")))
def test_fault_delivered_to_handler(mode, fault_signals, run_emu, native, describe):
    """The handler gets the signal, si_code, si_addr and RIP Linux gives, and the program
    goes on after siglongjmp."""
    f = FAULTS[mode]
    result = run_emu(fault_signals, [mode, "handler"], cpus=1, extra=list(f.extra))
    rc, out, err = result
    assert b"Traceback" not in err and err == b"", describe(result)
    lines = out.decode(errors="replace").splitlines()
    assert len(lines) == 3 and lines[0].startswith(f"{mode}: expect addr "), describe(result)
    assert lines[1] == f"caught {f.signal} si_code={f.code} si_addr=ok rip=ok", describe(result)
    assert lines[2] == f"{mode}: recovered" and rc == 0, describe(result)
    n_rc, n_out, _ = native(mode, "handler")
    n_lines = n_out.decode(errors="replace").splitlines()
    if n_rc == 0 and len(n_lines) == 3:  # the fault exists natively (uintr-insn: no UINTR)
        assert lines[1:] == n_lines[1:], f"native: {n_lines}\n{describe(result)}"


@pytest.mark.parametrize("mode", list(_params("default")))
def test_fault_default_action(mode, fault_signals, run_emu, native, describe, fatal_line):
    """No handler: status 128+N and one line naming the signal, the faulting RIP and the
    address Linux reports in si_addr (none for SI_KERNEL); natively the process dies of the
    same signal."""
    f = FAULTS[mode]
    result = run_emu(fault_signals, [mode, "default"], cpus=1, extra=list(f.extra))
    rc, out, _ = result
    lines = out.decode(errors="replace").splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{mode}: expect addr "), describe(result)
    assert rc == 128 + SIGNO[f.signal], describe(result)
    m = fatal_line(result)
    assert m["sig"] == f.signal, describe(result)
    expected_addr = int(lines[0].rsplit(" ", 1)[1], 16)
    if f.code == "SI_KERNEL":  # #GP, #SS, int3: si_addr is 0, not an address
        assert m["addr"] is None and expected_addr == 0, describe(result)
    else:
        assert int(m["addr"], 16) == expected_addr, describe(result)
    n_rc, n_out, _ = native(mode, "default")
    if n_rc < 0:
        assert -n_rc == SIGNO[f.signal], f"natively: status {n_rc}"
        assert n_out.decode().split(": expect")[0] == lines[0].split(": expect")[0]


def test_uintr_instruction_runs_with_the_feature(fault_signals, run_emu, describe):
    """The SIGILL of 'uintr-insn' comes from --cpu-features=-uintr: with UINTR (the default)
    the same STUI executes."""
    result = run_emu(fault_signals, ["uintr-insn", "default"], cpus=1)
    rc, out, _ = result
    assert rc == 0 and out.endswith(b"uintr-insn: no fault\n"), describe(result)


@pytest.mark.parametrize("cpus", [1, 2])
def test_noncanonical_while_another_thread_runs(
    cpus, build_program, run_emu, native_result, describe
):
    """With two runnable threads the emulator slices and counts per block: a #GP at
    0x8000000000000010 is still told from a page fault at 0x10 (the default TLB would see both
    as an access at 0x10; the fill hook sees the whole page), 100 of each, as natively."""
    n_rc, n_out, _ = native_result("fault_noncanonical_threads")
    assert n_rc == 0 and n_out == b"gp=100 pf=100 other=0\n", f"natively: {n_rc} {n_out!r}"
    result = run_emu(build_program("fault_noncanonical_threads"), cpus=cpus)
    assert result == (0, n_out, b""), describe(result)


# --------------------------------------------------------------------------- fault_uintr


@pytest.fixture(scope="module")
def fault_uintr(build_program):
    return lambda abi: build_program("fault_uintr", UINTR_CFLAGS + ABI_CFLAGS[abi])


@pytest.mark.parametrize("abi", ABIS)
def test_fault_in_uintr_handler_caught(abi, fault_uintr, run_emu, describe):
    """A NULL store inside the UINTR handler is SIGSEGV/SEGV_MAPERR, si_addr 0; the signal
    handler leaves the UINTR handler by siglongjmp, so UIF stays 0."""
    result = run_emu(
        fault_uintr(abi), ["handler-null", "handler"], cpus=2, extra=["--uintr-abi", abi]
    )
    assert result[1].decode() == (
        "handler-null: sending\n"
        "caught SIGSEGV si_code=SEGV_MAPERR si_addr=0 handler ran 1 time(s)\n"
        "UIF after the fault: 0\n"
        "handler-null: recovered\n"
    ), describe(result)
    assert result[0] == 0 and result[2] == b"", describe(result)


@pytest.mark.parametrize("abi", ABIS)
def test_fault_in_uintr_handler_default(abi, fault_uintr, run_emu, describe, fatal_line):
    """Without a signal handler the emulator stays in control: status 139, one line whose
    RIP lies inside the UINTR handler."""
    path = fault_uintr(abi)
    result = run_emu(path, ["handler-null", "default"], cpus=2, extra=["--uintr-abi", abi])
    assert result[0] == 139 and result[1] == b"handler-null: sending\n", describe(result)
    m = fatal_line(result)
    assert m["sig"] == "SIGSEGV" and int(m["addr"], 16) == 0, describe(result)
    lo, hi = symbol_range(path, "ui_handler")
    assert lo <= int(m["rip"], 16) < hi, f"rip {m['rip']} not in ui_handler [{lo:#x}, {hi:#x})"


@pytest.mark.parametrize("abi", ABIS)
def test_uiret_corrupted_frame_caught(abi, fault_uintr, run_emu, describe):
    """UIRET pops a non-canonical RIP: #GP(0) -> SIGSEGV/SI_KERNEL, si_addr 0, at the UIRET
    (RSP, UIF unchanged: UIF is still 0 afterwards)."""
    result = run_emu(
        fault_uintr(abi), ["uiret-corrupt", "handler"], cpus=2, extra=["--uintr-abi", abi]
    )
    assert result[1].decode() == (
        "uiret-corrupt: sending\n"
        "caught SIGSEGV si_code=SI_KERNEL si_addr=0 rip=at UIRET handler ran 1 time(s)\n"
        "UIF after the fault: 0\n"
        "uiret-corrupt: recovered\n"
    ), describe(result)


@pytest.mark.parametrize("abi", ABIS)
def test_uiret_corrupted_frame_default(abi, fault_uintr, run_emu, describe, fatal_line):
    """The same without a handler: status 139, one line, no address (#GP), RIP at the UIRET."""
    path = fault_uintr(abi)
    result = run_emu(path, ["uiret-corrupt", "default"], cpus=2, extra=["--uintr-abi", abi])
    assert result[0] == 139, describe(result)
    m = fatal_line(result)
    assert m["sig"] == "SIGSEGV" and m["addr"] is None, describe(result)
    assert bytes_at(path, int(m["rip"], 16), 4) == bytes.fromhex("f30f01ec"), describe(result)


LIMITS = [
    pytest.param(
        ["--max-insns", "5000000"],
        r"instruction limit reached: 5000000 instructions",
        id="max-insns",
    ),
    pytest.param(["--timeout", "2"], r"timeout: stopped after 2 s", id="timeout"),
]


@pytest.mark.parametrize(("limit", "message"), LIMITS)
@pytest.mark.parametrize("abi", ABIS)
def test_uintr_handler_never_returns(abi, limit, message, fault_uintr, run_emu, describe):
    """A handler that spins forever is stopped by the limit: status 124, one clear line."""
    result = run_emu(
        fault_uintr(abi), ["spin"], cpus=2, extra=["--uintr-abi", abi, *limit], timeout=60
    )
    rc, out, err = result
    assert rc == 124, describe(result)
    assert out == b"spin: sending\nin the handler, spinning\n", describe(result)
    lines = err.decode(errors="replace").splitlines()
    assert len(lines) == 1 and lines[0].startswith("uintr-emu: "), describe(result)
    assert re.search(message, lines[0]), describe(result)


STORMS = [
    pytest.param(1, 100_000, id="1cpu-100000"),
    pytest.param(2, 5_000, id="2cpus-5000"),
    # A notification to a receiver with UIF = 0 does not end the sender's slice (it could
    # not be delivered anyway): 100000 cross-CPU sends take seconds, not a turn each.
    pytest.param(2, 100_000, id="2cpus-100000"),
]


@pytest.mark.parametrize(("cpus", "sends"), STORMS)
@pytest.mark.parametrize("abi", ABIS)
def test_senduipi_storm_coalesces(abi, cpus, sends, fault_uintr, run_emu, describe):
    """One thread sends one vector N times to a receiver running with UIF = 0: the posts
    coalesce (PIR, UIRR), nothing is delivered until STUI, then exactly one interrupt."""
    result = run_emu(
        fault_uintr(abi), ["storm", str(sends)], cpus=cpus, extra=["--uintr-abi", abi], timeout=300
    )
    assert result[1].decode() == (
        f"storm: {sends} sends done, handler ran 0 time(s) with UIF = 0\n"
        "storm: after STUI the handler ran 1 time(s)\n"
    ), describe(result)
    assert result[0] == 0 and result[2] == b"", describe(result)


# --------------------------------------------------------------------------- fault_syscalls

#: Every mode of fault_syscalls.c, with the reason of its strict xfail while it is a known bug.
SYSCALL_MODES: dict[str, str | None] = {
    "fstat-pipe": None,
    "fstat-socket": None,
    "fstat-eventfd": None,
    "lseek-whence": None,
    "lseek-pipe": None,
    "lseek-eventfd": None,
    "ftruncate-neg": None,
    "truncate-neg": None,
    "pread-huge": None,
    "pread-neg": None,
    "pwrite-end": None,
    "readv-huge": None,
    "readv-neg": None,
    "readv-iovcnt": None,
    "sendmsg-iovlen": None,
    "access-mode": None,
    "access-flags": None,
    "access-empty": None,
    "open-flags": None,
    "open-flags-high": None,
    "mmap-huge": None,  # ENOMEM (or a mapping, where the host overcommits)
    "dupfd-negative": None,
    "dupfd-limit": None,
    "clone-bad-ptid": None,
    "clone-bad-ctid": None,
    "execve-e2big": None,
    "execve-efault": None,
    "execve-empty-argv": None,
}


@pytest.mark.parametrize(
    "mode",
    [
        pytest.param(m, marks=[pytest.mark.xfail(strict=True, reason=r)] if r else [], id=m)
        for m, r in SYSCALL_MODES.items()
    ],
)
def test_syscall_arguments_that_crashed_the_emulator(
    mode, build_program, run_emu, native_result, describe
):
    """What the program prints natively (a result or an errno) it prints under the
    emulator, with status 0 -- never 'internal error'."""
    n_rc, n_out, _ = native_result("fault_syscalls", [mode])
    assert n_rc == 0 and n_out.startswith(mode.encode()), f"natively: {n_rc} {n_out!r}"
    result = run_emu(build_program("fault_syscalls"), [mode], cpus=1)
    assert b"internal error" not in result[2], describe(result)
    assert result[1] == n_out and result[0] == 0, f"native: {n_out!r}\n{describe(result)}"


def test_sleep_forever_then_read_the_clock(build_program, run_emu, describe):
    """nanosleep({LONG_MAX, 0}) with no other thread: the virtual clock jumps to the deadline,
    which saturates at KTIME_MAX as the kernel's does (the clock used to overflow a timespec
    and end the emulator)."""
    result = run_emu(build_program("fault_syscalls"), ["sleep-forever"], cpus=1)
    assert b"internal error" not in result[2], describe(result)
    assert result[1] == b"sleep-forever: nanosleep 0, clock_gettime 0\n", describe(result)
