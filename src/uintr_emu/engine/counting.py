"""Instruction counting for `Engine`: the two counters, the block table, and what `Engine.run`
does when the block counter stops the engine.

Slicing needs an instruction limit, and the virtual clock needs to know how many instructions a
slice really ran, also when a hook stopped it early. Unicorn's own `count=` cannot say that, and
any `UC_HOOK_CODE` hook makes the translator sync RIP and the lazy flags before every instruction
(28% of a 4-thread run, docs/performance.md). So counting is done per translation block:
`uf_count_block` (native/counter.c), installed as a `UC_HOOK_BLOCK` hook, looks the block's
instruction count up in a direct-mapped table and adds it on entry. Counts stay exact:
- a block whose count is not in the table stops the engine before it runs (the hook is called
  before the block's first instruction); `Engine.run` asks Unicorn for the block's `icount`
  (`ctl_request_cache`), fills the entry and resumes: `uf_run_blocks` (native/counter.c) does
  it without leaving C, `Counters.learn` when Python must see the stop;
- a block that would pass the limit stops the engine before it runs, so a slice ends at a block
  boundary at or below its limit (a block longer than a whole slice runs anyway: progress);
- SYSCALL, a trapped #UD, INT n and HLT end their translation block, so a hook that stops the
  engine never leaves a block half counted; a memory fault does, and `run` recounts the faulting
  block up to and including the faulting instruction (`Counters.recount`), as per-instruction
  counting would.
The exact per-instruction counter (`uf_count_insn`, a `UC_HOOK_CODE` hook) is kept for the
debugger (breakpoints and single steps land inside blocks), seeded runs and the last stretch of
`--max-insns`. Both stop the engine synchronously with `uc_emu_stop` from inside the hook
(docs/engine-notes.md G14: never stop asynchronously). Changing hooks flushes translated code
(docs/engine-notes.md G8), so callers switch rarely.

While neither counter is installed, a third callback, the tracker (`uf_track_block`), notes the
block entered last, as both counters note what they count last (`last_pc`, `last_size`): a
branch to a non-canonical address shows only as a refused fetch at its target, and the branch
is that block's last instruction (`Engine.branch_before`). It costs a call per block (~15% of
an uncounted compute-bound run, docs/performance.md); without the library there is none (a
Python callback per block would cost far more), and such a fault is reported at the target.

Without the native library the same two functions run as Python callbacks (`_python_counters`):
the same counts and stops, at Python speed (~1 µs per block, about 100x slower on counted code;
there is no way to native code without a compiler or an executable page). `Counters(python=True)`
picks them for tests.
"""

from __future__ import annotations

import ctypes
import itertools
from collections.abc import Callable
from typing import Any

from . import native
from .binding import Uc, UcError, uc_hook_h, ucc, uclib, x86
from .errors import EngineError

RIP = x86.UC_X86_REG_RIP
U64 = 0xFFFF_FFFF_FFFF_FFFF

# Why a counter stopped the engine: STOP_MISS, STOP_OVER, STOP_ATTENTION of shared.h.
MISS, OVER, ATTENTION = 1, 2, 3

#: Entries of the block table (a power of two); 16 bytes each, one table per address space.
BLOCK_TABLE_SIZE = 1 << 15
NO_BLOCK = U64  # the pc of an emptied entry: no block starts there
SEEN_WORDS = 1024  # Counter.seen: pages that may hold a learnt block, one bit per page mod 2^16

#: UC_HOOK_CODE hooks run in the order they were added: numbers drawn from this one sequence tell
#: which of two such hooks (the per-instruction counter, a breakpoint) runs first.
hook_order = itertools.count(1)


class BlockEntry(ctypes.Structure):
    """`struct block_entry` of native/shared.h: one slot of the block table."""

    _fields_ = [("pc", ctypes.c_uint64), ("size", ctypes.c_uint32), ("n", ctypes.c_uint32)]


class Counter(ctypes.Structure):
    """`struct counter` of native/shared.h, shared by both counters (`count`, `limit` and `stop`
    are all the per-instruction one uses)."""

    _fields_ = [
        ("count", ctypes.c_uint64),
        ("limit", ctypes.c_uint64),
        ("stop", ctypes.c_void_p),
        ("last_pc", ctypes.c_uint64),
        ("last_size", ctypes.c_uint32),
        ("last_n", ctypes.c_uint32),
        ("stop_why", ctypes.c_uint32),
        ("miss_size", ctypes.c_uint32),
        ("miss_pc", ctypes.c_uint64),
        ("mask", ctypes.c_uint64),
        ("table", ctypes.c_void_p),
        ("attention", ctypes.c_void_p),
        ("start", ctypes.c_void_p),
        ("ctl", ctypes.c_void_p),
        ("mmu", ctypes.c_void_p),
        ("learnt", ctypes.c_uint64),
        ("halt", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
        ("seen", ctypes.c_uint64 * SEEN_WORDS),
    ]


#: The attention word of an engine no machine watches (`Counters.attend`): never set.
_NOBODY = ctypes.c_uint32(0)


def slot(pc: int) -> int:
    """The block table entry of `pc`: uf_count_block's hash, `(pc ^ pc >> 12) & mask`."""
    return (pc ^ (pc >> 12)) & (BLOCK_TABLE_SIZE - 1)


#: A UC_HOOK_CODE / UC_HOOK_BLOCK callback: (uc, address, size, user_data).
CODE_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32,
                           ctypes.c_void_p)  # fmt: skip
_ENTRY_SIZE = ctypes.sizeof(BlockEntry)


def _python_counters(c: Counter) -> tuple[Any, Any]:
    """`uf_count_insn` and `uf_count_block` of native/counter.c as Python callbacks on `c`, for
    an install without the library: the same steps, so the same counts and stops."""
    stop = uclib.uc_emu_stop

    attention = ctypes.c_uint32.from_address(c.attention)

    def count_insn(uc: int, address: int, size: int, _data: int) -> None:
        if c.count >= c.limit or attention.value:
            stop(uc)
            return
        c.count += 1
        c.last_pc = address
        c.last_size = size

    def count_block(uc: int, pc: int, size: int, _data: int) -> None:
        if attention.value:
            c.stop_why = ATTENTION
            stop(uc)
            return
        e = BlockEntry.from_address(c.table + _ENTRY_SIZE * ((pc ^ pc >> 12) & c.mask))
        if e.pc != pc or e.size != size:
            c.stop_why = MISS
            c.miss_size = size
            c.miss_pc = pc
            stop(uc)
            return
        count = (c.count + e.n) & U64
        if count > c.limit:
            c.stop_why = OVER
            stop(uc)
            return
        c.count = count
        c.last_pc = pc
        c.last_size = size
        c.last_n = e.n

    return CODE_CB(count_insn), CODE_CB(count_block)


_NATIVE = (native.address("uf_count_insn"), native.address("uf_count_block"))
_TRACKER = native.address("uf_track_block")


class Counters:
    """The instruction counters of one engine (module docstring): the installed one, the block
    table and what was learnt into it. `Engine.run` reads the counter's stop reason and calls
    `learn`, `fit_first_block` and `recount`.

    `reg_read` reads an engine register. `python`: use the Python callbacks even if the native
    library is there (for tests; without the library they are used anyway). `attention`: the
    word that, while set, makes every callback stop the engine at its next boundary (the
    machine's, shared by all its engines: `Machine.call_attention`).
    """

    def __init__(self, uc: Uc, reg_read: Callable[[int], int], *, python: bool = False,
                 attention: ctypes.c_uint32 | None = None) -> None:  # fmt: skip
        self.uc = uc
        self._handle = uc._uch
        self._reg_read = reg_read
        self.counter = Counter(0, 0, ctypes.cast(uclib.uc_emu_stop, ctypes.c_void_p).value)
        self._attention = _NOBODY if attention is None else attention  # (kept alive)
        self.counter.attention = ctypes.addressof(self._attention)
        self.counter.start = ctypes.cast(uclib.uc_emu_start, ctypes.c_void_p).value
        self.counter.ctl = ctypes.cast(uclib.uc_ctl, ctypes.c_void_p).value
        self.counter.learnt = NO_BLOCK
        insn, block = _NATIVE
        self.python = python or insn is None or block is None
        # Engine.run's loop for the block counter in C (learns missed blocks itself), and the
        # table scan that forgets them: None with the Python counters.
        lib = None if self.python else native.LIB
        self.run_blocks: Any = None if lib is None else native.raw_entry(lib.uf_run_blocks)
        self._forget_blocks: Any = None if lib is None else lib.uf_forget_blocks
        self._python_cbs: tuple[Any, Any] | None = None
        if self.python:
            self._python_cbs = _python_counters(self.counter)
            insn, block = (ctypes.cast(cb, ctypes.c_void_p).value for cb in self._python_cbs)
        self._callback = {True: insn, False: block}  # by `precise`
        self.hook: int | None = None  # the installed counter's hook handle
        self.tracker: int | None = None  # the tracker's, while no counter is installed
        self.precise = False  # the installed counter is the per-instruction one
        self.order = 0  # its place in `hook_order`
        self._table: ctypes.Array[BlockEntry] | None = None  # block pc -> instruction count
        self._learned: dict[int, set[int]] = {}  # page -> block pcs in the table

    @property
    def per_block(self) -> bool:
        return self.hook is not None and not self.precise

    # --- installing -------------------------------------------------------------------

    def set(self, on: bool, precise: bool = False) -> None:
        """Install or remove the counter: per block, or per instruction (`precise`); without
        one, the tracker (module docstring). Changing it flushes translated code: call
        rarely."""
        tracking = not on and _TRACKER is not None
        if on == (self.hook is not None) and (not on or precise == self.precise) and (
                tracking == (self.tracker is not None)):  # fmt: skip
            return
        for old in (self.hook, self.tracker):
            if old is not None:
                uclib.uc_hook_del(self._handle, old)
        self.hook = self.tracker = None
        if tracking:
            self.tracker = self._add(ucc.UC_HOOK_BLOCK, _TRACKER, "the block tracker")
        if on:
            if not precise and self._table is None:
                self._table = (BlockEntry * BLOCK_TABLE_SIZE)()
                self.counter.table = ctypes.addressof(self._table)
                self.counter.mask = BLOCK_TABLE_SIZE - 1
            htype = ucc.UC_HOOK_CODE if precise else ucc.UC_HOOK_BLOCK
            self.hook = self._add(htype, self._callback[precise], "the instruction counter")
            self.precise = precise
            self.order = next(hook_order)
        # Unicorn decides at translation time whether a block calls code hooks, and 2.1.4
        # does not flush on hook_add: without this, code translated while counting was off
        # would stay uncounted (and never reach a slice limit).
        self.uc.ctl_flush_tb()

    def _add(self, htype: int, callback: int | None, what: str) -> int:
        """Add the hook `callback` (a function address) with the counter as its data."""
        h = uc_hook_h()
        status = uclib.uc_hook_add(
            self._handle, ctypes.byref(h), htype, ctypes.c_void_p(callback),
            ctypes.byref(self.counter), ctypes.c_uint64(1), ctypes.c_uint64(0),
        )  # fmt: skip
        if status != ucc.UC_ERR_OK:
            raise EngineError(f"cannot install {what}: {UcError(status)}")
        return int(h.value)

    # --- after the block counter stopped the engine (Engine.run) ---------------------

    def learn(self, pc: int, size: int) -> None:
        """Put the instruction count of the block at `pc` (as Unicorn translated it) in the
        table; the slot's previous block, if any, is forgotten (it misses again next time)."""
        assert self._table is not None
        _pc, icount, _size = self.uc.ctl_request_cache(pc)
        entry = self._table[slot(pc)]
        if entry.size:
            self._learned.get(entry.pc >> 12, set()).discard(entry.pc)
        entry.pc, entry.size, entry.n = pc, size, icount
        self.counter.seen[(pc >> 18) % SEEN_WORDS] |= 1 << (pc >> 12 & 63)
        self._learned.setdefault(pc >> 12, set()).add(pc)

    def fit_first_block(self) -> int | None:
        """The first block of a run does not fit in what is left of the limit: raise the limit
        to let it run whole (progress) and return RIP, where it starts; None if its count is
        not known."""
        assert self._table is not None
        rip = self._reg_read(RIP)
        entry = self._table[slot(rip)]
        if entry.pc != rip or not entry.size:
            return None
        self.counter.limit = self.counter.count + entry.n
        return rip

    def recount(self, ran_current: bool) -> None:
        """The engine stopped inside the block entered last, whose whole count was added on
        entry: count it up to the instruction at RIP, and that one too if it began (a fault:
        the per-instruction counter counts an instruction before it runs; a breakpoint or a
        single step: it has not run). The block from RIP on ends where the entered block ends
        (same code), unless the translator cut the entered one at its size limit: then the
        whole block stays counted (deterministic, a few instructions high)."""
        c = self.counter
        rip = self._reg_read(RIP)
        if not c.last_pc <= rip < c.last_pc + c.last_size:
            return  # e.g. a fetch fault: the block that jumped there ran to its end
        try:
            _pc, rest, size = self.uc.ctl_request_cache(rip)
        except UcError:
            return
        if rip + size == c.last_pc + c.last_size and rest <= c.last_n:
            c.count -= rest - 1 if ran_current else rest

    # --- outside runs -----------------------------------------------------------------

    def forget(self, address: int, size: int) -> None:
        """The code in [address, address + size) changed: drop the block counts learnt there."""
        if self._table is None:
            return
        first, last = address >> 12, (address + size - 1) >> 12
        if self._forget_blocks is not None:  # uf_run_blocks learns without telling `_learned`
            self._forget_blocks(ctypes.byref(self.counter), ctypes.c_uint64(first),
                                ctypes.c_uint64(last))  # fmt: skip
            self._learned.clear()
            return
        if not self._learned:
            return
        if last - first < len(self._learned):
            pages = [p for p in range(first, last + 1) if p in self._learned]
        else:
            pages = [p for p in self._learned if first <= p <= last]
        for page in pages:
            for pc in self._learned.pop(page):
                entry = self._table[slot(pc)]
                if entry.pc == pc:
                    entry.pc, entry.size = NO_BLOCK, 0
