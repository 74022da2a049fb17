"""Memory faults at the engine level: non-canonical addresses (#GP/#SS) vs page faults.

Unicorn 2.1.4 reports a faulting access with its address cut to 52 bits, so the Linux layer asks
`traps.classify`, which replays the faulting instruction under a virtual TLB
(`Engine.replay_fault`) to see the full linear address. These tests run one instruction on a
bare `Engine` (no Linux layer), let it fault, and check the classification, that the replay
leaves every register and the memory as they were, and that the engine runs on normally.
Encodings from GNU as 2.40.
"""

from __future__ import annotations

import struct

import pytest

from uintr_emu import traps
from uintr_emu.engine import unicorn as eng
from uintr_emu.engine.unicorn import Engine, RunFault
from uintr_emu.hw.cpu import is_canonical
from uintr_emu.hw.faults import GeneralProtection, StackFault

CODE = 0x10000
STACK = 0x20000
RSP0 = 0x2F000
DATA = 0x40000  # RW; a qword at DATA holds TARGET
RODATA = 0x50000  # read-only
TOP = 0x7FFF_FFFF_F000  # the last user page, RW
TARGET = CODE + 0x800  # int3
NC = 0x8000_0000_0000_0000
NC_LOW = 0x0000_8000_0000_0010
KERNEL_HALF = 0xFFFF_8880_0000_0008
ALIAS = (1 << 52) | DATA  # not canonical; its low 52 bits name DATA

MOV_RAX_RBX = "488b03"
INT3 = "cc"

X86 = eng.x86
REGS = [*eng.GPR_IDS, eng.RIP, eng.RFLAGS, eng.FS_BASE, eng.GS_BASE]


class Bench:
    def __init__(self, python_counters: bool = False) -> None:
        e = self.e = Engine(python_counters=python_counters)
        uc = e.uc
        uc.mem_map(CODE, 0x1000, eng.PROT_R | eng.PROT_X)
        uc.mem_map(STACK, 0x10000, eng.PROT_R | eng.PROT_W)
        uc.mem_map(DATA, 0x1000, eng.PROT_R | eng.PROT_W)
        uc.mem_map(RODATA, 0x1000, eng.PROT_R)
        uc.mem_map(TOP, 0x1000, eng.PROT_R | eng.PROT_W)
        uc.mem_write(TARGET, bytes.fromhex(INT3))
        uc.mem_write(DATA, struct.pack("<Q", TARGET) + bytes(range(256)) * 15)
        self.faults: list[tuple[int, int, int]] = []
        self.syscalls = 0
        e.on_mem_fault = lambda kind, addr, size: self.faults.append((kind, addr, size))
        e.on_interrupt = lambda intno: e.stop()
        e.on_invalid = lambda: False
        e.on_syscall = self._syscall

    def _syscall(self) -> None:
        self.syscalls += 1

    def run(self, code: str, **regs: int) -> RunFault | None:
        e = self.e
        e.uc.mem_write(CODE, bytes.fromhex(code + INT3))
        e.invalidate_code(CODE, 0x800)
        e.reg_write(eng.RSP, RSP0)
        for name, value in regs.items():
            e.reg_write(getattr(X86, f"UC_X86_REG_{name.upper()}"), value)
        try:
            e.run(CODE, None)
        except RunFault as err:
            return err
        return None

    def state(self) -> tuple[list[int], bytes, bytes, bytes]:
        uc = self.e.uc
        regs = [self.e.reg_read(r) for r in REGS]
        mem = [uc.mem_read(a, n) for a, n in ((STACK, 0x10000), (DATA, 0x1000), (TOP, 0x1000))]
        return regs, *mem

    def classify(self):
        assert self.e.mem_fault is not None, "the instruction did not fault"
        before = self.state()
        result = traps.classify(self.e, *_kind_address_rip(self.e))
        assert self.state() == before, "the replay changed registers or memory"
        return result


def _kind_address_rip(e: Engine) -> tuple[int, int, int]:
    assert e.mem_fault is not None
    kind, address, _size, rip = e.mem_fault
    return kind, address, rip


@pytest.fixture
def bench() -> Bench:
    return Bench()


GP, SS, PF = GeneralProtection, StackFault, None

CASES = [
    # (id, code, registers, expected)
    ("read 2^63", MOV_RAX_RBX, {"rbx": NC}, GP),
    ("read 0x0000800000000010", MOV_RAX_RBX, {"rbx": NC_LOW}, GP),
    ("read NULL+0x10", MOV_RAX_RBX, {"rbx": 0x10}, PF),
    ("read kernel half", MOV_RAX_RBX, {"rbx": KERNEL_HALF}, PF),
    ("read crossing into non-canonical", MOV_RAX_RBX, {"rbx": TOP + 0xFFC}, GP),
    ("write 2^63", "488903", {"rbx": NC}, GP),
    ("write read-only", "488903", {"rbx": RODATA + 8}, PF),
    ("rmw 2^63", "48ff03", {"rbx": NC}, GP),
    ("read [rbp]", "488b4500", {"rbp": NC}, SS),
    ("read fs:[rbx], FS base 2^63", "64488b03", {"rbx": 0x10, "fs_base": NC}, GP),
    ("push, RSP 2^63", "50", {"rsp": NC + 0x100}, SS),
    ("call [rbx], RSP 2^63", "ff13", {"rbx": DATA, "rsp": NC + 0x100}, SS),
    ("call [rbx], rbx 2^63", "ff13", {"rbx": NC}, GP),
    ("pop [rbx], rbx 2^63", "8f03", {"rbx": NC}, GP),
    # The read of the aliased source succeeds in the first run (the engine's aliasing), the
    # write to 0x100 faults; architecturally the read comes first and is #GP.
    ("movsq from an alias of DATA", "48a5", {"rsi": ALIAS, "rdi": 0x100}, GP),
    ("movsq to 2^63", "48a5", {"rsi": DATA, "rdi": NC}, GP),
    ("fxsave crossing into non-canonical", "0fae03", {"rbx": TOP + 0xF00}, GP),
    ("fxsave to unmapped", "0fae03", {"rbx": 0x1000}, PF),
    ("jmp to 2^63", "ffe0", {"rax": NC}, GP),
    ("jmp to 0x0000800000000000", "ffe0", {"rax": 1 << 47}, GP),
    ("jmp to the kernel half", "ffe0", {"rax": KERNEL_HALF}, PF),
    ("jmp to unmapped", "ffe0", {"rax": 0x1000}, PF),
]


@pytest.mark.parametrize(
    ("code", "regs", "expected"), [pytest.param(*c[1:], id=c[0]) for c in CASES]
)
def test_classify(bench: Bench, code: str, regs: dict[str, int], expected) -> None:
    err = bench.run(code, **regs)
    assert err is not None and len(bench.faults) == 1
    result = bench.classify()
    if expected is None:
        assert result is None
    else:
        assert type(result) is expected, result
    assert bench.syscalls == 0


def test_page_fault_addresses_are_full(bench: Bench) -> None:
    """For a canonical fault the report stands: the replay sees the same access, whole."""
    bench.run(MOV_RAX_RBX, rbx=KERNEL_HALF)
    kind, address, _size, rip = bench.e.mem_fault
    assert (kind, address, rip) == (eng.ucc.UC_MEM_READ_UNMAPPED, KERNEL_HALF & (2**52 - 1), CODE)
    replay = bench.e.replay_fault(is_canonical)
    assert replay == eng.FaultReplay(eng.ucc.UC_MEM_READ_UNMAPPED, KERNEL_HALF, False)


def test_replay_reports_the_noncanonical_page(bench: Bench) -> None:
    bench.run("488903", rbx=NC_LOW)
    assert bench.e.replay_fault(is_canonical) == eng.FaultReplay(eng.MEM_WRITE, 1 << 47, True)


def test_fxsave_runs_on_after_its_faulting_store(bench: Bench) -> None:
    """The engine finishes the block after a faulting fxsave store: RIP at the stop is past the
    instruction, so no replay; the hook's RIP is the fxsave's (the report decides)."""
    bench.run("0fae03" + "b901000000", rbx=TOP + 0xF00)  # fxsave [rbx]; mov ecx, 1
    kind, address, _size, rip = bench.e.mem_fault
    assert rip == CODE and bench.e.reg_read(eng.RIP) != CODE
    assert (kind, address) == (eng.ucc.UC_MEM_WRITE_UNMAPPED, 1 << 47)
    assert isinstance(traps.classify(bench.e, kind, address, rip), GeneralProtection)


def test_engine_runs_on_after_a_replay(bench: Bench) -> None:
    """Hooks, callbacks, TLB mode and translations are back to normal after a replay."""
    bench.run(MOV_RAX_RBX, rbx=NC)
    assert isinstance(bench.classify(), GeneralProtection)
    assert bench.run(MOV_RAX_RBX, rbx=DATA) is None
    assert bench.e.reg_read(eng.RAX) == TARGET
    # A non-canonical alias of a mapped page is accessed silently again (the engine's own
    # behaviour outside a replay, docs/robustness.md): the virtual TLB is off.
    assert bench.run(MOV_RAX_RBX, rbx=ALIAS) is None
    assert bench.e.reg_read(eng.RAX) == TARGET
    # The fault callback is the owner's again.
    assert bench.run(MOV_RAX_RBX, rbx=0x10) is not None
    assert bench.faults[-1] == (eng.ucc.UC_MEM_READ_UNMAPPED, 0x10, 8)


@pytest.mark.parametrize("python", [False, True], ids=["library", "python"])
@pytest.mark.parametrize("precise", [False, True], ids=["per-block", "per-instruction"])
def test_replay_keeps_the_instruction_counter(precise: bool, python: bool) -> None:
    """Neither counter stops the replay (the block counter stops at a block it has no count
    for: the faulting instruction starts one), and the counter is as the run left it; also
    with the Python counters, which read the table through the counter as the native ones."""
    bench = Bench(python_counters=python)
    e = bench.e
    e.set_counting(True, precise=precise)
    e.uc.mem_write(CODE, bytes.fromhex("90" * 5 + MOV_RAX_RBX + INT3))
    e.invalidate_code(CODE, 0x100)
    e.reg_write(X86.UC_X86_REG_RBX, NC)
    with pytest.raises(RunFault):
        e.run(CODE, 6, 0)  # the limit is reached exactly at the faulting instruction
    assert e.counter.count == 6 and e.reg_read(eng.RIP) == CODE + 5
    counter = bytes(e.counter)
    assert e.replay_fault(is_canonical) == eng.FaultReplay(eng.MEM_READ, NC, True)
    assert bytes(e.counter) == counter
    assert isinstance(traps.classify(e, *_kind_address_rip(e)), GeneralProtection)
    assert bytes(e.counter) == counter
    # and the next slice counts as before
    e.reg_write(X86.UC_X86_REG_RBX, DATA)
    assert e.run(CODE, 100, 0) == 7 and e.reg_read(eng.RAX) == TARGET


INC_RBX = "48ff03"  # inc qword [rbx]: visible in memory if it runs


@pytest.mark.parametrize(
    "code",
    [
        pytest.param(MOV_RAX_RBX + INC_RBX + "0f05", id="next-in-block"),
        pytest.param("eb00" + INC_RBX + "0f05", id="jmp-same-page"),
        pytest.param("e9fb0f0000", id="jmp-other-page"),  # to CODE + 0x1000
        pytest.param(MOV_RAX_RBX + "0f05", id="syscall-next"),
    ],
)
def test_replay_of_an_instruction_that_does_not_fault_stops_after_it(
    bench: Bench, code: str
) -> None:
    """Safety net: if the instruction at RIP does not fault again, no later instruction gets a
    memory access or a callback through (the fill hook refuses other instructions' accesses);
    the replay returns None and restores the registers."""
    e = bench.e
    e.uc.mem_map(CODE + 0x1000, 0x1000, eng.PROT_R | eng.PROT_X)
    e.uc.mem_write(CODE + 0x1000, bytes.fromhex(INC_RBX + "0f05" + INT3))
    bench.run(code, rbx=DATA + 8)  # translate (and run) the code once
    bench.syscalls = 0
    e.reg_write(X86.UC_X86_REG_RBX, DATA + 8)
    e.reg_write(eng.RIP, CODE)
    before = bench.state()
    assert e.replay_fault(is_canonical) is None
    assert bench.state() == before and bench.syscalls == 0
    assert e.mem_fault is None
