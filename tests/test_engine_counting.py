"""Instruction counting on the engine: the per-block counter the scheduler slices with must give
the same counts as the per-instruction one (engine/counting.py docstring), only with slices that
end at block boundaries.

Snippets run on the bare CPU of tests/engine_harness.py; each test runs both counters, and
each runs twice: with the counters of the native library and with their Python fallback
(engine/counting.py), which must count alike.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest

from engine_harness import (
    CODE,
    DATA,
    RAX,
    RBX,
    RCX,
    Asm,
    Bare,
    GuestMemoryFault,
    UnexpectedInterrupt,
)
from uintr_emu.engine import counting, native

MODES = [pytest.param(True, id="precise"), pytest.param(False, id="blocks")]
UNMAPPED = 0x9_0000  # nothing is mapped there (engine_harness memory layout)
NewBare = Callable[[], Bare]


@pytest.fixture(params=[False, True], ids=["library", "python"])
def new_bare(request: pytest.FixtureRequest) -> NewBare:
    """Makes bare CPUs whose engine counts with the library's or with the Python callbacks."""
    python = request.param

    def make() -> Bare:
        bare = Bare(python_counters=python)
        assert bare.engine._counters.python == (python or native.LIB is None)
        return bare

    return make


def loop(n: int) -> Asm:
    """mov rcx, n; top: inc rax; inc rbx; dec rcx; jnz top; int3 -- 2 + 4n instructions."""
    a = Asm().mov_imm(RCX, n)
    a.label("top")
    return a.inc(RAX).inc(RBX).dec(RCX).jcc("jnz", "top").int3()


def run_slices(bare: Bare, limit: int, precise: bool) -> tuple[int, list[int]]:
    """Run to the int3 in slices of `limit`; the total count and each slice's count."""
    counts = []
    rip = CODE
    while not bare.interrupts:
        bare.run(rip, limit, precise=precise)
        counts.append(bare.engine.counter.count)
        rip = bare.rip
    return sum(counts), counts


@pytest.mark.parametrize("limit", [1, 3, 7, 100, 1000, 10**6])
def test_block_counts_equal_instruction_counts_over_slices(new_bare: NewBare, limit: int) -> None:
    totals = {}
    for precise in (True, False):
        bare = new_bare()
        bare.load(loop(500))
        total, counts = run_slices(bare, limit, precise)
        assert bare.reg(RAX) == bare.reg(RBX) == 500
        totals[precise] = total
        if precise:
            assert all(c == limit for c in counts[:-1])
        else:  # whole blocks within the limit; a block longer than the limit runs alone
            assert all(c <= max(limit, 5) for c in counts)
    assert totals[True] == totals[False] == 2 + 4 * 500


def test_a_block_longer_than_the_slice_runs_whole(new_bare: NewBare) -> None:
    """Progress: the first block of a run runs even when it alone exceeds the limit."""
    bare = new_bare()
    a = Asm()
    for _ in range(20):
        a.inc(RAX)
    bare.load(a.int3())
    bare.run(CODE, 5, precise=False)
    assert bare.reg(RAX) == 20
    assert bare.engine.counter.count == 21  # 20 x inc, int3


def test_a_slice_ends_at_the_last_block_boundary_within_the_limit(new_bare: NewBare) -> None:
    bare = new_bare()
    bare.load(loop(100))
    bare.run(CODE, 13, precise=False)  # mov + top block: 1 + 4 (5), 9 -- and 13 fits exactly
    assert bare.engine.counter.count == 13
    assert bare.rip == CODE + 10  # `top`: the next block has not started
    assert bare.reg(RAX) == 3
    bare.run(None, 6, precise=False)  # one block of 4; a second does not fit
    assert bare.engine.counter.count == 4
    assert bare.reg(RAX) == 4


@pytest.mark.parametrize("precise", MODES)
@pytest.mark.parametrize("at", [0, 1, 3])
def test_a_fault_inside_a_block_counts_up_to_the_faulting_instruction(
    new_bare: NewBare, at: int, precise
) -> None:
    """A memory fault ends a block early: the faulting instruction counts, the rest of the
    block does not (as the per-instruction counter sees it)."""
    bare = new_bare()
    a = Asm()
    for _ in range(at):
        a.inc(RAX)
    a.mov_imm(RBX, UNMAPPED).emit(b"\x48\x89\x03")  # mov [rbx], rax
    a.inc(RAX).inc(RAX).int3()
    bare.load(a)
    with pytest.raises(GuestMemoryFault) as exc:
        bare.run(CODE, 1000, precise=precise)
    assert exc.value.address == UNMAPPED and exc.value.fault.write
    assert bare.engine.counter.count == at + 2  # the incs, mov rbx, the faulting store
    assert bare.rip == CODE + 3 * at + 10


def test_changed_code_is_counted_afresh(new_bare: NewBare) -> None:
    """Same address, same block size, other instructions: the learnt count is dropped with the
    translation (invalidate_code), so the new block is counted right."""
    bare = new_bare()
    bare.load(Asm().emit(b"\xff\xc0" * 4).int3())  # 4 x inc eax (2 bytes each)
    bare.run(CODE, 1000, precise=False)
    assert bare.engine.counter.count == 5
    bare.interrupts.clear()
    bare.load(Asm().emit(b"\x48\x8d\x40\x01" * 2).int3())  # 2 x lea rax, [rax+1] (4 bytes)
    bare.run(CODE, 1000, precise=False)
    assert bare.engine.counter.count == 3


def test_blocks_sharing_a_table_slot_are_counted_exactly(new_bare: NewBare) -> None:
    """Two blocks of one loop in the same direct-mapped slot evict each other on every
    iteration: slow, but every count is right."""
    first = CODE + 16
    second = next(
        p for p in range(CODE + 0x100, CODE + 0xE000) if counting.slot(p) == counting.slot(first)
    )
    bare = new_bare()
    n = 50
    bare.poke(CODE, Asm().mov_imm(RCX, n).bytes() + b"\xe9" + struct.pack("<i", first - CODE - 15))
    body = Asm(first).inc(RAX).bytes()
    bare.poke(first, body + b"\xe9" + struct.pack("<i", second - (first + len(body) + 5)))
    tail = Asm(second).inc(RBX).dec(RCX).bytes()
    back = first - (second + len(tail) + 6)
    bare.poke(second, tail + b"\x0f\x85" + struct.pack("<i", back) + b"\xcc")
    total, _ = run_slices(bare, 10**6, precise=False)
    assert bare.reg(RAX) == bare.reg(RBX) == n
    assert total == 2 + n * 5 + 1  # mov, jmp; n x (inc, jmp, inc, dec, jnz); int3


def test_switching_counters_keeps_counting(new_bare: NewBare) -> None:
    """set_counting flushes translated code: blocks translated under one counter are counted
    by the other after a switch."""
    bare = new_bare()
    bare.load(loop(200))
    total = 0
    rip = CODE
    precise = False
    while not bare.interrupts:
        bare.run(rip, 97, precise=precise)
        total += bare.engine.counter.count
        rip = bare.rip
        precise = not precise
    assert total == 2 + 4 * 200
    assert bare.read_u64(DATA) == 0


@pytest.mark.parametrize("precise", MODES)
def test_a_divide_error_inside_a_block_counts_the_faulting_instruction(
    new_bare: NewBare, precise
) -> None:
    """#DE is a fault (SDM Vol. 3 Table 6-1): RIP stays at the div, which counts; the rest of
    its block does not run."""
    bare = new_bare()
    a = Asm().inc(RAX).inc(RAX).emit(b"\x31\xc9")  # xor ecx, ecx
    a.emit(b"\x48\xf7\xf1").inc(RAX).int3()  # div rcx
    bare.load(a)
    with pytest.raises(UnexpectedInterrupt):
        bare.run(CODE, 1000, precise=precise)
    assert bare.interrupts == [0]
    assert bare.engine.counter.count == 4
    assert bare.rip == CODE + 8


@pytest.mark.parametrize("precise", MODES)
def test_breakpoints_and_single_steps_inside_a_block_count_exactly(
    new_bare: NewBare, precise
) -> None:
    """The debugger stops before a breakpoint's instruction and steps one instruction: the
    counts of the pieces add up to the count of the plain run."""
    bare = new_bare()
    a = Asm()
    for _ in range(6):
        a.inc(RAX)
    bare.load(a.int3())
    e = bare.engine
    bp = CODE + 3 * 4  # the fifth inc
    e.add_breakpoint(bp)
    bare.run(CODE, 1000, precise=precise)
    assert e.breakpoint_hit == bp and bare.rip == bp
    assert e.counter.count == 4 and bare.reg(RAX) == 4
    e.breakpoint_hit = None
    e.breakpoint_skip = bp
    bare.run(bp, 1000, precise=precise, steps=1)
    assert e.counter.count == 1 and bare.rip == bp + 3 and bare.reg(RAX) == 5
    e.remove_breakpoint(bp)
    bare.run(bare.rip, 1000, precise=precise)
    assert e.counter.count == 2  # inc, int3
    assert bare.reg(RAX) == 6


STATE = ("count", "limit", "last_pc", "last_size", "last_n", "stop_why", "miss_size", "miss_pc")


@pytest.mark.skipif(native.LIB is None, reason="native library not built")
@pytest.mark.parametrize("precise", MODES)
def test_python_counters_leave_the_state_of_the_native_ones(precise) -> None:
    """The fallback is the C code step for step: after every slice (stopped at the limit, at a
    block to learn, or by the int3) every field of the counter is the same."""
    bares = [Bare(python_counters=python) for python in (False, True)]
    for bare in bares:
        bare.load(loop(30))
    rips = [CODE, CODE]
    while not bares[0].interrupts:
        states = []
        for i, bare in enumerate(bares):
            bare.run(rips[i], 11, precise=precise)
            rips[i] = bare.rip
            states.append([getattr(bare.engine.counter, f) for f in STATE])
        assert states[0] == states[1]
    assert bares[0].interrupts == bares[1].interrupts == [3]


@pytest.mark.requires_native
def test_missed_blocks_are_learnt_in_c_without_python(monkeypatch: pytest.MonkeyPatch) -> None:
    """uf_run_blocks learns each missed block and resumes without a trip through Python
    (Counters.learn is for the stops Python must see), and counts as the Python loop did."""
    calls: list[int] = []
    learn = counting.Counters.learn

    def spy(self: counting.Counters, pc: int, size: int) -> None:
        calls.append(pc)
        learn(self, pc, size)

    monkeypatch.setattr(counting.Counters, "learn", spy)
    bare = Bare()
    bare.load(loop(10))
    bare.run(CODE, 1000, precise=False)
    assert bare.engine.counter.count == 2 + 4 * 10 and bare.reg(RAX) == 10
    assert calls == []
    assert bare.engine.counter.learnt != counting.NO_BLOCK  # the loop's block, learnt in C
    # The code changed: its blocks are forgotten (uf_forget_blocks), and the Python loop
    # learns them again, to the same count.
    bare.interrupts.clear()
    bare.engine.invalidate_code(CODE, 0x100)
    bare.engine._counters.run_blocks = None
    bare.run(CODE, 1000, precise=False)
    assert bare.engine.counter.count == 42 and calls


@pytest.mark.requires_native
@pytest.mark.parametrize("span", [1, 16], ids=["page", "range"])
def test_forgetting_drops_exactly_the_blocks_of_the_range(span: int) -> None:
    """uf_forget_blocks looks at few slots (a page filter, the slots of a page's blocks) or
    the whole table (long ranges): either way the blocks learnt in the range go, others stay."""
    bare = Bare()
    bare.load(loop(3))
    bare.run(CODE, 1000, precise=False)
    c = bare.engine._counters

    assert c._table is not None
    table = c._table

    def learnt() -> set[int]:
        return {e.pc for e in table if e.size}

    blocks = learnt()
    assert blocks and all(CODE <= pc < CODE + 0x1000 for pc in blocks)
    c.forget(CODE + 0x1000, span * 0x1000)  # the pages after: nothing learnt there
    assert learnt() == blocks
    c.forget(CODE - (span - 1) * 0x1000, span * 0x1000)
    assert learnt() == set()
