"""Guest memory on the engine: the TLB-fill hook's permissions, and the faults it makes.

The engine runs with Unicorn's virtual TLB and a fill hook that grants each page its mapping's
permissions and refuses every other access (engine/mmu.py); a refused access ends the run with
the instruction at RIP, and `traps.memory_fault` turns it into #PF (with the exact address,
engine/probe.py), #GP or #SS. These tests run a few instructions on a bare `Engine` (no Linux
layer), with the native fill and its Python fallback. Encodings from GNU as 2.40.
"""

from __future__ import annotations

import ctypes
import mmap
import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from uintr_emu import traps
from uintr_emu.engine import mmu, native
from uintr_emu.engine import unicorn as eng
from uintr_emu.engine.unicorn import Engine, RunFault
from uintr_emu.hw.faults import GeneralProtection, PageFault, StackFault

CODE = 0x10000  # R+X, two pages
STACK = 0x20000
RSP0 = 0x2F000
DATA = 0x40000  # RW; a qword at DATA holds TARGET
RODATA = 0x50000  # read-only
RWX = 0x60000  # read, write and execute
TOP = 0x7FFF_FFFF_F000  # the last user page, RW
TARGET = CODE + 0x800  # int3
NC = 0x8000_0000_0000_0000
NC_LOW = 0x0000_8000_0000_0010
KERNEL_HALF = 0xFFFF_8880_0000_0008
ALIAS = (1 << 52) | DATA  # not canonical; its low 52 bits name DATA

MOV_RAX_RBX = "488b03"  # mov rax, [rbx]
MOV_RBX_RAX = "488903"  # mov [rbx], rax
INT3 = "cc"
R, W, X = eng.PROT_R, eng.PROT_W, eng.PROT_X

REGS = [*eng.GPR_IDS, eng.RIP, eng.RFLAGS, eng.FS_BASE, eng.GS_BASE]


class Bench:
    def __init__(self, python_mmu: bool = False, python_counters: bool = False) -> None:
        e = self.e = Engine(python_mmu=python_mmu, python_counters=python_counters)
        self.buffers: list[mmap.mmap] = []
        self.map(CODE, 0x2000, R | X)
        self.map(STACK, 0x10000, R | W)
        self.map(DATA, 0x1000, R | W)
        self.map(RODATA, 0x1000, R)
        self.map(RWX, 0x1000, R | W | X)
        self.map(TOP, 0x1000, R | W)
        self.write(TARGET, bytes.fromhex(INT3))
        self.write(DATA, struct.pack("<Q", TARGET) + bytes(range(256)) * 15)
        self.interrupts: list[int] = []
        self.syscalls = 0
        e.on_interrupt = self._interrupt
        e.on_invalid = lambda: False
        e.on_syscall = self._syscall

    def _interrupt(self, intno: int) -> None:
        self.interrupts.append(intno)
        self.e.stop()

    def _syscall(self) -> None:
        self.syscalls += 1

    def map(self, address: int, size: int, perms: int) -> None:
        buf = mmap.mmap(-1, size)
        self.buffers.append(buf)
        self.e.map_buffer(address, size, perms, buf, 0)

    def write(self, address: int, data: bytes) -> None:
        assert self.e.uc.mem_write(address, data) is None

    def run(self, code: str, at: int = CODE, limit: int | None = None,
            **regs: int) -> RunFault | None:  # fmt: skip
        e = self.e
        if limit is None and e.counting:
            limit = 10**9
        self.write(at, bytes.fromhex(code + INT3))
        e.invalidate_code(at, 0x800)
        e.reg_write(eng.RSP, RSP0)
        for name, value in regs.items():
            e.reg_write(eng.register_id(name), value)
        try:
            e.run(at, limit)
        except RunFault as err:
            return err
        assert e.mmu.state.fault_kind == 0, "a refusal recorded outside the guest's accesses"
        return None

    def fault(self, code: str, at: int = CODE, limit: int | None = None, **regs: int):
        """Run `code`, which must fault on memory; the exception and the state it reports."""
        assert self.run(code, at, limit, **regs) is not None, "no fault"
        assert self.e.mem_fault is not None
        return traps.memory_fault(self.e, self.e.mem_fault)

    def state(self) -> tuple[list[int], bytes, bytes, bytes]:
        uc = self.e.uc
        regs = [self.e.reg_read(r) for r in REGS]
        mem = [uc.mem_read(a, n) for a, n in ((STACK, 0x10000), (DATA, 0x1000), (TOP, 0x1000))]
        return regs, *mem


@pytest.fixture(params=[False, True], ids=["native", "python"])
def bench(request: pytest.FixtureRequest) -> Bench:
    b = Bench(python_mmu=request.param)
    assert b.e.mmu.python == (request.param or native.LIB is None)
    return b


GP, SS = GeneralProtection, StackFault


def PF(address: int, *, write: bool = False, fetch: bool = False, protection: bool = False):
    return (PageFault, address, write, fetch, protection)


CASES = [
    # (id, code, registers, expected)
    ("read 2^63", MOV_RAX_RBX, {"rbx": NC}, GP),
    ("read 0x0000800000000010", MOV_RAX_RBX, {"rbx": NC_LOW}, GP),
    ("read NULL+0x10", MOV_RAX_RBX, {"rbx": 0x10}, PF(0x10)),
    ("read kernel half", MOV_RAX_RBX, {"rbx": KERNEL_HALF}, PF(KERNEL_HALF)),
    ("read an alias of DATA", MOV_RAX_RBX, {"rbx": ALIAS}, GP),
    ("read crossing into non-canonical", MOV_RAX_RBX, {"rbx": TOP + 0xFFC}, GP),
    ("read crossing into unmapped", MOV_RAX_RBX, {"rbx": DATA + 0xFFC}, PF(DATA + 0x1000)),
    ("write 2^63", MOV_RBX_RAX, {"rbx": NC}, GP),
    (
        "write read-only",
        MOV_RBX_RAX,
        {"rbx": RODATA + 8},
        PF(RODATA + 8, write=True, protection=True),
    ),
    ("write code", MOV_RBX_RAX, {"rbx": CODE + 0x10}, PF(CODE + 0x10, write=True, protection=True)),
    ("rmw 2^63", "48ff03", {"rbx": NC}, GP),
    (
        "rmw read-only",
        "48ff03",
        {"rbx": RODATA + 0x18},
        PF(RODATA + 0x18, write=True, protection=True),
    ),
    ("read [rbp]", "488b4500", {"rbp": NC}, SS),
    ("read fs:[rbx], FS base 2^63", "64488b03", {"rbx": 0x10, "fs_base": NC}, GP),
    ("read fs:[rbx], FS base unmapped", "64488b03", {"rbx": 0x10, "fs_base": 0x3000}, PF(0x3010)),
    ("push, RSP 2^63", "50", {"rsp": NC + 0x100}, SS),
    ("push, RSP unmapped", "50", {"rsp": 0x1008}, PF(0x1000, write=True)),
    ("call [rbx], RSP 2^63", "ff13", {"rbx": DATA, "rsp": NC + 0x100}, SS),
    ("call [rbx], rbx 2^63", "ff13", {"rbx": NC}, GP),
    ("pop [rbx], rbx 2^63", "8f03", {"rbx": NC}, GP),
    ("movsq from an alias of DATA", "48a5", {"rsi": ALIAS, "rdi": 0x100}, GP),
    ("movsq to 2^63", "48a5", {"rsi": DATA, "rdi": NC}, GP),
    (
        "movsq to read-only",
        "48a5",
        {"rsi": DATA, "rdi": RODATA + 0x20},
        PF(RODATA + 0x20, write=True, protection=True),
    ),
    (
        "rep stosb into unmapped",
        "f3aa",
        {"rdi": DATA + 0xFF0, "rcx": 0x40},
        PF(DATA + 0x1000, write=True),
    ),
    ("cmpxchg16b unmapped", "480fc70b", {"rbx": 0x2230}, PF(0x2230)),
    ("fxsave crossing into non-canonical", "0fae03", {"rbx": TOP + 0xF00}, GP),
    ("fxsave to unmapped", "0fae03", {"rbx": 0x1000}, PF(0x1000, write=True)),
    (
        "fxsave crossing into unmapped",
        "0fae03",
        {"rbx": DATA + 0xF00},
        PF(DATA + 0x1000, write=True),
    ),
    ("jmp to 2^63", "ffe0", {"rax": NC}, GP),
    ("jmp to 0x0000800000000000", "ffe0", {"rax": 1 << 47}, GP),
    ("jmp to the kernel half", "ffe0", {"rax": KERNEL_HALF}, PF(KERNEL_HALF, fetch=True)),
    ("jmp to unmapped", "ffe0", {"rax": 0x1000}, PF(0x1000, fetch=True)),
    ("jmp to data", "ffe0", {"rax": DATA + 8}, PF(DATA + 8, fetch=True, protection=True)),
]


@pytest.mark.parametrize(
    ("code", "regs", "expected"), [pytest.param(*c[1:], id=c[0]) for c in CASES]
)
def test_classify(bench: Bench, code: str, regs: dict[str, int], expected) -> None:
    result = bench.fault(code, **regs)
    if isinstance(expected, tuple):
        kind, address, write, fetch, protection = expected
        assert type(result) is kind, result
        assert (result.address, result.write, result.fetch, result.protection) == (
            address, write, fetch, protection)  # fmt: skip
    else:
        assert type(result) is expected, result
    assert bench.syscalls == 0 and not bench.interrupts


def test_a_refusal_names_the_whole_page_the_kind_and_the_instruction(bench: Bench) -> None:
    e = bench.e
    bench.run("90" + MOV_RAX_RBX, rbx=KERNEL_HALF)
    assert e.mem_fault == mmu.Refusal(eng.MEM_READ, KERNEL_HALF & ~0xFFF, CODE + 1, False)
    bench.run("90" + MOV_RBX_RAX, rbx=RODATA + 0x10)
    assert e.mem_fault == mmu.Refusal(eng.MEM_WRITE, RODATA, CODE + 1, True)
    bench.run("ffe0", rax=ALIAS)
    assert e.mem_fault == mmu.Refusal(eng.MEM_FETCH, ALIAS, ALIAS, False)
    assert e.reg_read(eng.RIP) == ALIAS
    assert bench.run("90") is None and e.mem_fault is None


def test_the_faulting_instruction_is_at_rip_and_changed_nothing(bench: Bench) -> None:
    """The refused access ends the instruction: RIP at it, the instructions before it in the
    block done, none after it (an fxsave too: the engine no longer runs on to the block's end,
    as it did after a faulting store with the memory hooks)."""
    before = bench.state()
    code = "48ffc1" "0fae03" "b901000000"  # inc rcx; fxsave [rbx]; mov ecx, 1
    assert type(bench.fault(code, rbx=TOP + 0xF00, rcx=5)) is GP
    assert bench.e.reg_read(eng.RIP) == CODE + 3
    assert bench.e.reg_read(eng.GPR_IDS[1]) == 6
    regs, *mem = bench.state()
    assert mem[0] == before[1] and mem[1] == before[2]  # stack, data untouched
    push = bench.fault("50", rsp=0x1008)
    assert isinstance(push, PageFault) and bench.e.reg_read(eng.RSP) == 0x1008


def test_a_non_canonical_alias_of_a_mapped_page_faults(bench: Bench) -> None:
    """Unicorn's own page walk with paging off takes the low 52 bits as the physical address;
    the fill sees the linear page whole and refuses it (it used to be read silently)."""
    assert bench.run(MOV_RAX_RBX, rbx=DATA) is None and bench.e.reg_read(eng.RAX) == TARGET
    assert type(bench.fault(MOV_RAX_RBX, rbx=ALIAS)) is GP
    assert type(bench.fault(MOV_RBX_RAX, rbx=ALIAS + 8)) is GP


# --- permissions, per kind of access --------------------------------------------------------

PERMS = [R, R | W, R | X, R | W | X, 0, X, W]


@pytest.mark.parametrize("perms", PERMS, ids=["r", "rw", "rx", "rwx", "none", "x", "w"])
def test_each_access_is_granted_exactly_as_the_mapping_allows(bench: Bench, perms: int) -> None:
    page = 0x70000
    effective = perms | (R if perms & (W | X) else 0)  # x86: write or execute implies read
    bench.map(page, 0x1000, perms)
    bench.write(page + 0x100, bytes.fromhex(INT3))
    assert bench.e.mmu.perms(page + 0x123) == effective
    for kind, code, regs in (
        (eng.MEM_READ, MOV_RAX_RBX, {"rbx": page}),
        (eng.MEM_WRITE, MOV_RBX_RAX, {"rbx": page}),
        (eng.MEM_FETCH, "ffe0", {"rax": page + 0x100}),
    ):
        err = bench.run(code, **regs)
        if effective & mmu.NEED[kind]:
            assert err is None, (kind, bench.e.mem_fault)
        else:
            assert bench.e.mem_fault == mmu.Refusal(
                kind, page, page + 0x100 if kind == eng.MEM_FETCH else CODE, True)  # fmt: skip


def test_a_protection_change_takes_effect_at_once(bench: Bench) -> None:
    """Engine.protect flushes the TLB: entries filled before the change are gone (a stale one
    would let the access through), also for code already translated and run."""
    e = bench.e
    assert bench.run(MOV_RAX_RBX, rbx=DATA) is None
    e.protect(DATA, 0x1000, 0)
    assert bench.e.mem_fault is None
    bench.run(MOV_RAX_RBX, rbx=DATA)
    assert e.mem_fault == mmu.Refusal(eng.MEM_READ, DATA, CODE, True)
    e.protect(DATA, 0x1000, R | W)
    assert bench.run(MOV_RAX_RBX, rbx=DATA) is None
    # code: run it, take its execute permission away, run it again
    assert bench.run("90", at=RWX) is None
    e.protect(RWX, 0x1000, R | W)
    bench.run("90", at=RWX)
    assert e.mem_fault == mmu.Refusal(eng.MEM_FETCH, RWX, RWX, True)
    e.protect(RWX, 0x1000, R | W | X)
    assert bench.run("90", at=RWX) is None


def _store_code(bench: Bench, at: int, code: bytes) -> None:
    """A guest store of 8 bytes of code at `at` (mov [rbx], rax), run from CODE."""
    value = int.from_bytes(code.ljust(8, b"\x90"), "little")
    assert bench.run(MOV_RBX_RAX, rbx=at, rax=value) is None


MOV_EAX = "b8{:02x}000000"  # mov eax, imm32


@pytest.mark.parametrize("counting", [None, False, True], ids=["tracker", "blocks", "precise"])
def test_a_guest_store_to_translated_code_replaces_it(bench: Bench, counting: bool | None) -> None:
    """Self-modifying code on an RWX page: the store invalidates the translation (every
    Unicorn region is executable, so its notdirty_write checks every store to code)."""
    if counting is not None:
        bench.e.set_counting(True, precise=counting)
    limit = None if counting is None else 10**6
    for value in (1, 2, 3):
        _store_code(bench, RWX, bytes.fromhex(MOV_EAX.format(value) + INT3))
        bench.e.run(RWX, limit)
        assert bench.e.reg_read(eng.RAX) == value


def test_jit_pages_written_then_executed(bench: Bench) -> None:
    """The JIT pattern: write code into an RW page, mprotect it RX, run it; RW again, new code,
    RX, run: the new code runs (its page was not executable while it was written)."""
    e = bench.e
    page = 0x80000
    bench.map(page, 0x1000, R | W)
    for value in (7, 8, 9):
        e.protect(page, 0x1000, R | W)
        _store_code(bench, page, bytes.fromhex(MOV_EAX.format(value) + INT3))
        e.protect(page, 0x1000, R | X)
        e.reg_write(eng.RSP, RSP0)
        e.run(page, None)
        assert e.reg_read(eng.RAX) == value


def test_code_marks_cover_exactly_the_executable_ranges(bench: Bench) -> None:
    """docs/engine-notes.md §15: one never-called FETCH_UNMAPPED hook per executable range
    (adjacent executable regions as one), redrawn as mappings and protections change; none
    with the Python fill (the marks only save time)."""
    e = bench.e
    if e.mmu.python:
        assert e.mmu._marks == {}
        return
    assert set(e.mmu._marks) == {(CODE, CODE + 0x2000), (RWX, RWX + 0x1000)}
    bench.map(RWX + 0x1000, 0x1000, R | X)  # touches RWX: one range
    assert set(e.mmu._marks) == {(CODE, CODE + 0x2000), (RWX, RWX + 0x2000)}
    e.protect(CODE, 0x1000, R)
    e.unmap(RWX + 0x1000, 0x1000)
    assert set(e.mmu._marks) == {(CODE + 0x1000, CODE + 0x2000), (RWX, RWX + 0x1000)}
    e.protect(RWX, 0x1000, R | W)  # a JIT page made writable: no mark, its stores are fast
    assert set(e.mmu._marks) == {(CODE + 0x1000, CODE + 0x2000)}
    assert bench.run(MOV_RBX_RAX, at=CODE + 0x1000, rbx=RWX, rax=5) is None


def test_unmap_and_invalidate_probe_code_pages_without_a_fault(bench: Bench) -> None:
    """Unicorn looks code pages up when it drops translations (unmap, invalidate_code; after
    every run for its stop address): the fill allows that, and no run fails for it."""
    e = bench.e
    page = 0x90000
    bench.map(page, 0x2000, R | W | X)
    assert bench.run("90", at=page) is None
    e.protect(page, 0x1000, R | W)
    e.invalidate_code(page, 0x2000)
    assert bench.run("90") is None
    e.unmap(page, 0x2000)
    assert bench.run("90") is None and e.mmu.state.stale == 0
    assert e.regions() == sorted(e.regions())
    assert all(not (lo < page + 0x2000 and hi > page) for lo, hi, _ in e.regions())
    bench.run("ffe0", rax=page + 0x10)
    assert e.mem_fault == mmu.Refusal(eng.MEM_FETCH, page, page + 0x10, False)


def test_a_deleted_counter_leaves_no_stale_permission(bench: Bench) -> None:
    """Deleting a block hook makes Unicorn probe, at the end of the next run, every page it
    instrumented; one that is no longer executable is granted for that probe and flushed."""
    e = bench.e
    e.set_counting(True)
    e.reg_write(eng.RSP, RSP0)
    assert bench.run("90", at=RWX, limit=100) is None
    e.protect(RWX, 0x1000, R | W)
    e.set_counting(False)
    assert bench.run("90") is None
    assert e.mmu.state.stale == 0
    bench.run("ffe0", rax=RWX)
    assert e.mem_fault == mmu.Refusal(eng.MEM_FETCH, RWX, RWX, True)


# --- branches to non-canonical addresses: reported at the branch ------------------------------

BRANCHES = [
    # (id, code before the branch, the branch, registers, RSP the fault reports)
    ("jmp rax", "", "ffe0", {"rax": NC}, RSP0),
    ("call rax", "", "ffd0", {"rax": NC}, RSP0),
    ("ret", "", "c3", {}, RSP0),
    ("ret 16", "", "c21000", {}, RSP0),
    ("jmp [rbx]", "", "ff23", {"rbx": DATA + 0x100}, RSP0),
    ("after three instructions", "90" "48ffc1" "4889d9", "ffe0", {"rax": NC}, RSP0),
    ("jmp rax to 2^47", "4889c0", "ffe0", {"rax": 1 << 47}, RSP0),
]


@pytest.mark.parametrize("counting", [None, False, True], ids=["tracker", "blocks", "precise"])
@pytest.mark.parametrize(("before", "branch", "regs", "rsp"),
                         [pytest.param(*b[1:], id=b[0]) for b in BRANCHES])  # fmt: skip
def test_a_branch_to_a_non_canonical_address_faults_at_the_branch(
    bench: Bench, counting: bool | None, before: str, branch: str, regs: dict[str, int], rsp: int
) -> None:
    """SDM JMP/CALL/RET: #GP(0) if the target is not canonical, before anything is pushed or
    popped. The engine fails the fetch at the target after the branch; the branch is the last
    instruction of the block entered last (noted by the tracker, the block counter, or the
    per-instruction counter)."""
    e = bench.e
    if counting is not None:
        e.set_counting(True, precise=counting)
    bench.write(RSP0, struct.pack("<Q", NC | 0x40))  # what ret pops
    bench.write(DATA + 0x100, struct.pack("<Q", NC | 0x80))  # what jmp [rbx] reads
    limit = None if counting is None else 10**6
    result = bench.fault(before + branch, limit=limit, **regs)
    assert type(result) is GP, result
    assert e.reg_read(eng.RIP) == CODE + len(before) // 2
    assert e.reg_read(eng.RSP) == rsp


def test_a_branch_fault_without_a_block_is_reported_at_the_target(bench: Bench) -> None:
    """A run that starts at a non-canonical RIP entered no block: RIP stays at the target."""
    e = bench.e
    e.reg_write(eng.RSP, RSP0)
    with pytest.raises(RunFault):
        e.run(NC, None)
    assert type(traps.memory_fault(e, e.mem_fault)) is GP
    assert e.reg_read(eng.RIP) == NC


def test_a_sigreturn_to_a_non_canonical_rip_stays_at_the_target(bench: Bench) -> None:
    """A SYSCALL whose handler writes RIP (rt_sigreturn) is no branch: RIP stays there."""
    e = bench.e

    def sigreturn() -> None:
        e.reg_write(eng.RIP, NC | 0x100)

    e.on_syscall = sigreturn
    assert type(bench.fault("0f05")) is GP
    assert e.reg_read(eng.RIP) == NC | 0x100


# --- the region table --------------------------------------------------------------------------


def _fresh_state(capacity: int = 4) -> tuple[mmu.MmuState, ctypes.Array[mmu.Region]]:
    s = mmu.MmuState()
    table = (mmu.Region * capacity)()
    s.regions, s.capacity = ctypes.addressof(table), capacity
    return s, table


def _regions(s: mmu.MmuState) -> list[tuple[int, int, int]]:
    t = (mmu.Region * s.count).from_address(s.regions) if s.count else ()
    return [(r.start, r.end, r.perms) for r in t]


def _reference(pages: dict[int, int]) -> list[tuple[int, int, int]]:
    out: list[list[int]] = []
    for p in sorted(pages):
        if out and out[-1][1] == p and out[-1][2] == pages[p]:
            out[-1][1] = p + 1
        else:
            out.append([p, p + 1, pages[p]])
    return [(a * 0x1000, b * 0x1000, c) for a, b, c in out]


OPS = st.lists(
    st.tuples(st.integers(0, 40), st.integers(1, 12), st.one_of(st.none(), st.integers(0, 7))),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(OPS)
def test_the_table_functions_keep_the_mappings(ops) -> None:
    """uf_mmu_assign (native) and _python_assign give the same table, equal to a page-by-page
    model with adjacent equal ranges merged, and the same 'before' permissions."""
    lib = native.LIB
    sides = [("python", *_fresh_state())]
    if lib is not None:
        sides.append(("native", *_fresh_state()))
        lib.uf_mmu_assign.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64,
                                      ctypes.c_uint32, ctypes.c_bool]  # fmt: skip
        lib.uf_mmu_assign.restype = ctypes.c_int
    pages: dict[int, int] = {}
    keep = []
    for first, n, perms in ops:
        before = 0
        for p in range(first, first + n):
            before |= pages.get(p, 0)
            if perms is None:
                pages.pop(p, None)
            else:
                pages[p] = perms
        for k, (name, s, table) in enumerate(sides):
            args = (first * 0x1000, (first + n) * 0x1000, perms or 0, perms is not None)
            while True:
                if name == "python":
                    got = mmu._python_assign(s, *args)
                else:
                    got = lib.uf_mmu_assign(ctypes.byref(s), *args)
                if got >= 0:
                    break
                bigger = (mmu.Region * (2 * s.capacity))()
                ctypes.memmove(bigger, table, ctypes.sizeof(mmu.Region) * s.count)
                keep.append(table)
                table = bigger
                s.regions, s.capacity = ctypes.addressof(bigger), len(bigger)
                sides[k] = (name, s, table)
            assert got == before, (name, args)
            assert _regions(s) == _reference(pages), name


def test_engine_regions_follow_map_protect_unmap(bench: Bench) -> None:
    e = bench.e
    base = 0x1_0000_0000
    bench.map(base, 0x10000, R | W)
    e.protect(base + 0x3000, 0x2000, R)
    e.unmap(base + 0x8000, 0x1000)
    with pytest.raises(eng.EngineError):  # a hole in the range: nothing changes
        e.protect(base + 0x7000, 0x2000, R)
    mine = [r for r in e.regions() if base <= r[0] < base + 0x10000]
    assert mine == [(base, base + 0x3000, R | W), (base + 0x3000, base + 0x5000, R),
                    (base + 0x5000, base + 0x8000, R | W),
                    (base + 0x9000, base + 0x10000, R | W)]  # fmt: skip
    # Unicorn's regions cover the same ranges, all executable: permissions are the table's
    ranges = [(a, b + 1) for a, b, _ in e.uc.mem_regions()]
    assert (base + 0x8000, base + 0x9000) not in ranges
    assert all(p == eng.ucc.UC_PROT_ALL for _a, _b, p in e.uc.mem_regions())


# --- the exact address of a page fault (engine/probe.py) ---------------------------------------


def test_the_exact_address_does_not_touch_the_guest(bench: Bench) -> None:
    """Learning the byte runs a copy of the instruction elsewhere: registers, memory and the
    instruction counter are as the fault left them."""
    e = bench.e
    e.set_counting(True)
    assert bench.run("90" "48a5", limit=100, rsi=DATA, rdi=RODATA + 0x28) is not None
    before, count = bench.state(), e.counter.count
    result = traps.memory_fault(e, e.mem_fault)
    assert isinstance(result, PageFault) and result.address == RODATA + 0x28
    assert bench.state() == before and e.counter.count == count == 2


def test_random_offsets_are_exact() -> None:
    rng = random.Random(14)
    b = Bench()
    for _ in range(30):
        offset = rng.randrange(0, 0x1000 - 8)
        page = rng.choice((0x5000, RODATA, KERNEL_HALF & ~0xFFF))
        code = rng.choice((MOV_RBX_RAX, "48ff03") if page == RODATA else
                          (MOV_RAX_RBX, MOV_RBX_RAX, "48ff03"))  # fmt: skip
        result = b.fault(code, rbx=page + offset)
        assert isinstance(result, PageFault) and result.address == page + offset, (code, page)
